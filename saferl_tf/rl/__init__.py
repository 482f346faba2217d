"""Reinforcement-learning pieces as pure TensorFlow functions and small modules:
lambda-returns and GAE (``returns``) and the augmented Lagrangian
(``lagrangian``)."""
