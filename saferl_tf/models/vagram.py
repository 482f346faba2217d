"""The value-gradient weighted model loss (VaGraM; Voelcker, Liao, Garg,
Farahmand, ICLR 2022), as pure TensorFlow functions and a gradient cache.

A model predicts [Δs, r] for (s, a); e = Δŝ - Δs is its next-state error in raw
state units. Each of the 4 value functions V_i(s') = Q_i(s', μ_π(s')) (the two
critics and their two targets, with the policy's mean action held fixed) gives
a gradient g_i = ∇_{s'} V_i(s') at the true next state. Then, per member and
sample::

    bounded (the paper's VaGraM):  (1/d) Σ_j (1/4) Σ_i (g_ij e_j)² + (r̂ - r)²
    unbounded:                    (1/4) Σ_i (Σ_j g_ij e_j)²         + (r̂ - r)²

averaged over members and samples (optionally plus the MSE over all outputs).
Before use, each critic's gradient rows whose norm is above the batch's 0.95
quantile are scaled down to it.

The published code (pairlab/vagram at cc7e2e4) differs in three ways that
are bugs, each avoided here and tested (``tests/test_vagram.py``): its 4
gradients accumulate (it never zeroes the input gradient between critics, so
g_2 = ∇V_1 + ∇V_2, ...); its cache keeps only ensemble member 0's slice; and an
``or norm < 1e5`` condition switches the quantile clipping off.

Call sequence::

    cache = ValueGradientCache()
    gradients = cache.get(version, next_observations [N, d], value_functions)  # [N, 4, d]
    g = clip_gradient_norms(tf.gather(gradients, indices))                    # [E, B, 4, d]
    loss = vagram_loss(prediction [E, B, d + 1], target [E, B, d + 1], g)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

CLIP_QUANTILE = 0.95


def value_gradients(value_functions: Sequence[Callable], next_observation) -> tf.Tensor:
    """∇_{s'} V_i(s') for each value function, separately: [N, d] -> [N, K, d].
    Each V_i maps [N, d] -> [N]; its gradient is its own (no accumulation)."""
    next_observation = tf.convert_to_tensor(next_observation, tf.float32)
    gradients = []
    for value_function in value_functions:
        with tf.GradientTape() as tape:
            tape.watch(next_observation)
            values = value_function(next_observation)
        gradients.append(tape.gradient(values, next_observation))
    return tf.stack(gradients, axis=-2)


def clip_gradient_norms(gradients, quantile: float = CLIP_QUANTILE) -> tf.Tensor:
    """Per value function (axis -2), rows [..., d] whose L2 norm is at or above
    the ``quantile`` of that function's norms over the whole batch (every other
    axis) are scaled to that norm. [..., K, d] -> the same shape."""
    norms = tf.norm(gradients, axis=-1)  # [..., K]
    flat = tf.reshape(norms, [-1, tf.shape(norms)[-1]])
    bound = tfp.stats.percentile(flat, 100.0 * quantile, axis=0, interpolation="linear")  # [K]
    scale = tf.where(norms < bound, 1.0, bound / tf.maximum(norms, 1e-12))
    return tf.stop_gradient(gradients * scale[..., None])


def vagram_loss(prediction, target, gradients, bounded: bool = True,
                add_mse: bool = False) -> tf.Tensor:  # fmt: skip
    """prediction, target [..., d + 1] ([Δs, r], raw units); gradients [..., K, d]
    -> the scalar loss (module docstring), the mean over every leading axis."""
    return tf.reduce_mean(_sample_losses(prediction, target, gradients, bounded, add_mse))


def vagram_member_loss(prediction, target, gradients, bounded: bool = True,
                       add_mse: bool = False) -> tf.Tensor:  # fmt: skip
    """Per ensemble member: [E, B, d + 1] and gradients [E, B, K, d] -> [E], each
    the mean over its batch, with the batch's quantile clipping applied first
    (the ``ensemble.MemberLoss`` that ``GaussianEnsemble.fit(loss=...)`` takes)."""
    clipped = clip_gradient_norms(gradients)
    return tf.reduce_mean(_sample_losses(prediction, target, clipped, bounded, add_mse), axis=1)


def _sample_losses(prediction, target, gradients, bounded, add_mse):
    """The loss of each sample [...]."""
    error = prediction[..., :-1] - target[..., :-1]  # [..., d]
    reward_error = tf.square(prediction[..., -1] - target[..., -1])  # [...]
    if bounded:
        weighted = tf.reduce_mean(tf.square(gradients * error[..., None, :]), axis=-2)  # [..., d]
        state_term = tf.reduce_mean(weighted, axis=-1)
    else:
        projected = tf.reduce_sum(gradients * error[..., None, :], axis=-1)  # [..., K]
        state_term = tf.reduce_mean(tf.square(projected), axis=-1)
    loss = state_term + reward_error
    if add_mse:
        loss += tf.reduce_mean(tf.square(prediction - target), axis=-1)
    return loss


class ValueGradientCache:
    """The value gradients of a dataset's next states, computed once per
    ``version`` and reused until it changes: ``get`` returns [N, K, d], indexed
    like the dataset, so every member's bootstrap indices gather their own rows.
    ``version`` must change whenever the value functions or the dataset do, for
    example (the critics' update count, the rows ever added)."""

    def __init__(self, chunk: int = 4096):
        self.chunk = chunk
        self._version = None
        self._size = None
        self._gradients = None
        self.computations = 0  # How often the gradients were (re)computed.

    def get(self, version, next_observation: np.ndarray, value_functions) -> np.ndarray:
        size = len(next_observation)
        if self._version != version or self._size != size:
            parts = [value_gradients(value_functions, next_observation[start:start + self.chunk])
                     .numpy() for start in range(0, size, self.chunk)]  # fmt: skip
            self._gradients = np.concatenate(parts) if parts else None
            self._version, self._size = version, size
            self.computations += 1
        return self._gradients
