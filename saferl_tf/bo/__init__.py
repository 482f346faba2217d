"""Constrained Bayesian optimization of agents' hyperparameters.

The tuner (``tuner``) and its pieces: search spaces (``space``), study state
(``study``), proposers (Trieste, scikit-optimize), trial runners (``trials``)
and synthetic test problems (``synthetic``). Local policy search (GIBO and its
baselines) lives in ``saferl_tf.search``.
"""
