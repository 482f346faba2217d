"""Bayesian optimization: the constrained hyperparameter tuner (``tuner``) and
its pieces: search spaces, study state, proposers (Trieste, scikit-optimize),
trial runners and synthetic test problems."""
