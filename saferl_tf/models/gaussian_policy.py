"""A Gaussian policy with a state-independent log standard deviation, usable
with any flat parameter vector (for trust-region steps).

mean = MLP(observation) (tanh hidden layers, linear output), std =
exp(log_std), a trainable vector: the policy of TRPO, CPO and CMBPO's published
codes (log_std starts at -0.5). Not squashed: a sampled action may leave the
action bounds, and the environment clips it.

Call sequence::

    policy = GaussianPolicy(observation_size=20, action_size=6, hidden=(128, 128))
    distribution = policy.distribution(observation [N, O])            # current weights
    theta = flatten(policy.parameters)                                # [P]
    distribution = policy.distribution(observation, unflatten(theta, policy.parameters))

``parameters`` lists the variables in a fixed order (kernels and biases of each
layer, then log_std); ``distribution`` takes values in that order.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions


class GaussianPolicy(tf.Module):
    def __init__(self, observation_size: int, action_size: int, hidden: Sequence[int] = (128, 128),
                 initial_log_std: float = -0.5, seed: int = 0, name: str = "policy"):  # fmt: skip
        super().__init__(name=name)
        self.observation_size, self.action_size = int(observation_size), int(action_size)
        initializer = tf.random.Generator.from_seed(seed)
        sizes = [self.observation_size, *hidden, self.action_size]
        self.kernels, self.biases = [], []
        for index, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            # Glorot uniform, as tf.layers.dense in the published codes.
            limit = np.sqrt(6.0 / (fan_in + fan_out))
            kernel = initializer.uniform([fan_in, fan_out], -limit, limit)
            self.kernels.append(tf.Variable(kernel, name=f"kernel_{index}"))
            self.biases.append(tf.Variable(tf.zeros([fan_out]), name=f"bias_{index}"))
        self.log_std = tf.Variable(tf.fill([self.action_size], float(initial_log_std)),
                                   name="log_std")  # fmt: skip

    @property
    def parameters(self) -> list[tf.Variable]:
        return [v for pair in zip(self.kernels, self.biases) for v in pair] + [self.log_std]

    def mean_and_log_std(self, observation, parameters: Sequence | None = None):
        """observation [N, O] -> mean [N, A] and log_std [A]."""
        values = self.parameters if parameters is None else list(parameters)
        hidden = tf.cast(observation, tf.float32)
        layers = len(self.kernels)
        for index in range(layers):
            hidden = hidden @ values[2 * index] + values[2 * index + 1]
            if index < layers - 1:
                hidden = tf.tanh(hidden)
        return hidden, values[-1]

    def distribution(self, observation, parameters: Sequence | None = None):
        """observation [N, O] -> a diagonal Gaussian, batch [N], event [A]."""
        mean, log_std = self.mean_and_log_std(observation, parameters)
        return tfd.MultivariateNormalDiag(mean, tf.exp(log_std) * tf.ones_like(mean))


def gaussian_kl(mean, log_std, other_mean, other_log_std):
    """KL(N(mean, e^log_std) || N(other_mean, e^other_log_std)) per row, summed over
    the action dimensions: [N, A] (log_stds broadcast) -> [N]."""
    variance, other_variance = tf.exp(2.0 * log_std), tf.exp(2.0 * other_log_std)
    spread = (variance + tf.square(mean - other_mean)) / (2.0 * other_variance)
    per_dimension = other_log_std - log_std + spread - 0.5
    return tf.reduce_sum(per_dimension * tf.ones_like(mean), axis=-1)
