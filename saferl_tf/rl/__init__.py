"""Reinforcement-learning pieces as pure TensorFlow functions and small modules:
returns (``returns``), the augmented Lagrangian (``lagrangian``), actor and
critic heads and their losses (``actor_critic``)."""
