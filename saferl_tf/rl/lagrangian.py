"""The augmented Lagrangian for an inequality constraint g <= 0 (LAMBDA's).

Nocedal and Wright, eq. 17.65, with multiplier lambda and penalty c:

    psi(g) = lambda g + (c / 2) g^2     if lambda + c g > 0
             -lambda^2 / (2 c)          otherwise

and after each step  lambda <- relu(lambda + c g),  c <- min(c (1 + growth), c_max).
``psi`` is added to the policy's loss, its gradient flowing through g (for
LAMBDA, g = mean(V_c) - d, the expected episode cost above its limit);
lambda and c are ``tf.Variable``s so they live in the checkpoint and a compiled
train step never retraces.

    lagrangian = AugmentedLagrangian()             # lambda 1e-6, c 5e-9
    penalty = lagrangian(constraint)               # psi with the current lambda, c
    lagrangian.update(constraint)                  # then the multiplier step
"""

from __future__ import annotations

import tensorflow as tf


class AugmentedLagrangian(tf.Module):
    def __init__(self, initial_multiplier: float = 1e-6, initial_penalty: float = 5e-9,
                 penalty_growth: float = 1e-5, max_penalty: float = 1.0,
                 name: str = "augmented_lagrangian"):  # fmt: skip
        super().__init__(name=name)
        if initial_penalty <= 0:
            raise ValueError(f"initial_penalty must be > 0, got {initial_penalty}")
        self.multiplier = tf.Variable(initial_multiplier, dtype=tf.float32, trainable=False,
                                      name="lagrange_multiplier")  # fmt: skip
        self.penalty = tf.Variable(initial_penalty, dtype=tf.float32, trainable=False,
                                   name="penalty")  # fmt: skip
        self.penalty_growth = penalty_growth
        self.max_penalty = max_penalty

    def __call__(self, constraint):
        """psi(g) for a scalar g (differentiable in g; lambda and c are constants)."""
        constraint = tf.cast(constraint, tf.float32)
        multiplier, penalty = tf.stop_gradient(self.multiplier), tf.stop_gradient(self.penalty)
        active = multiplier + penalty * constraint > 0
        return tf.where(active, multiplier * constraint + 0.5 * penalty * constraint**2,
                        -(multiplier**2) / (2.0 * penalty))  # fmt: skip

    def update(self, constraint) -> None:
        constraint = tf.stop_gradient(tf.cast(constraint, tf.float32))
        self.multiplier.assign(tf.nn.relu(self.multiplier + self.penalty * constraint))
        self.penalty.assign(
            tf.minimum(self.penalty * (1.0 + self.penalty_growth), self.max_penalty)
        )
