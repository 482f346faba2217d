"""Bayesian optimization.

- The constrained hyperparameter tuner (``tuner``) and its pieces: search
  spaces (``space``), study state (``study``), proposers (Trieste,
  scikit-optimize), trial runners (``trials``) and synthetic test problems.
- Local policy search: the GP gradient posterior (``gp``), ``GIBOSearcher``
  (``gibo``), ARS, CMA-ES and vanilla BO (``baselines``), all behind the
  ask/tell interface of ``search``, and GIBO's synthetic objectives.
"""
