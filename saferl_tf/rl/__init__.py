"""Reinforcement-learning pieces as pure TensorFlow functions and small modules:
lambda-returns and GAE (``returns``) and the constraint penalties
(``lagrangian``: the ``ConstraintPenalty`` interface, LAMBDA's augmented
Lagrangian, the PID Lagrangian and ``make_penalty``)."""
