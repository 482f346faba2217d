"""Running mean and variance of vector observations, and normalization with them.

LAMBDA's published code (yardenas/la-mbda, ``la_mbda/replay_buffer.py``) keeps
a moving mean and variance of dense observations in ``tf.Variable``s, updates
them once per finished episode with that episode's observations, and feeds the
world model (at replay-sampling time) and the policy (at every acting step)
``clip((x - mean) / std, -10, 10)`` with the same current statistics, where a
standard deviation below 1e-6 is replaced by 1 (``la_mbda/utils.py``
``normalize_clip``: no epsilon is added). Images are not normalized this way.

``RunningNormalizer`` keeps the same statistics (population variance, the
same clip and small-deviation rule) and merges each batch exactly with the
parallel update of Chan, Golub and LeVeque (1979)::

    w = w_old + w_batch,  f = w_batch / w,  delta = mean_batch - mean_old
    mean = mean_old + f * delta
    var  = (1 - f) * var_old + f * var_batch + f * (1 - f) * delta^2

with ``var_batch`` the batch's two-pass population variance. The state holds
the variance itself (not a sum of squares) and merges with weight fractions,
so it neither cancels catastrophically for large offsets nor overflows for
huge counts. Two weightings:

* ``decay=None`` (the default): every observation weighs the same, so the
  statistics are those of all data ever fed, as ``np.mean`` / ``np.var``.
* ``decay=d``: each ``update`` call weighs ``1 - d`` and older weight decays
  by ``d`` per call, the exponential weighting of the published code (it used
  ``tfp.stats.assign_moving_mean_variance`` with its default ``d = 0.99`` once
  per episode, so every episode weighs the same whatever its length).

Where the published code is wrong, and this class is not: the published code
read the raw variables of ``assign_moving_mean_variance``, which start at zero
and are *not* debiased (the function returns debiased values, which the
published code dropped). After n episodes its mean and variance are scaled by
1 - 0.99^n: after the first episode mean = 0.01 m and var = 0.0099 E[x^2], so
observations came out about 10 x / rms(x) and mostly clipped; the factor is
0.63 after 100 episodes and still 0.95 after 300 (its default run of 500,000
environment steps is 500 episodes). Even TFP's debiased variance is off early on, as it
measures the first batch's spread around the zero initial mean (0.99 E[x^2]
rather than Var[x] after one update). Here the accumulated weight starts at 0
and the first update gives the batch's own mean and variance; later updates
are the exact weighted merge, so both weightings are unbiased from the start.

The statistics are ``tf.Variable``s (``dtype``, float64 by default), so they
live in the agent's checkpoint and compiled functions read their current
values without retracing; ``update`` and ``normalize`` are plain TensorFlow
ops, usable eagerly or inside ``tf.function(jit_compile=True)``::

    normalizer = RunningNormalizer(size)        # size = D
    normalizer.update(observations)             # [..., D], e.g. one episode [T + 1, D]
    normalized = normalizer.normalize(x)        # [..., D] -> [..., D], same dtype as x
"""

from __future__ import annotations

import tensorflow as tf


class RunningNormalizer(tf.Module):
    """Running mean and population variance of [..., size] data, for ``normalize``.

    Args:
      size: D, the length of the observation vectors.
      clip: ``normalize`` clips to [-clip, clip]; None does not clip.
      min_std: a standard deviation below this is replaced by 1 (published: 1e-6).
      epsilon: added to the variance before the square root (published: none).
      decay: None weighs all data equally; a float in [0, 1) weighs each
        ``update`` call 1 - decay and decays the older weight by ``decay``.
      dtype: of the accumulators (float64 by default; float32 halves the state
        but its count is exact only up to 2^24).
    """

    def __init__(self, size: int, clip: float | None = 10.0, min_std: float = 1e-6,
                 epsilon: float = 0.0, decay: float | None = None,
                 dtype: tf.DType = tf.float64, name: str = "running_normalizer"):  # fmt: skip
        super().__init__(name=name)
        size = int(size)
        dtype = tf.as_dtype(dtype)
        if size < 1:
            raise ValueError(f"RunningNormalizer needs size >= 1, got {size}")
        if not dtype.is_floating:
            raise ValueError(f"RunningNormalizer needs a floating dtype, got {dtype.name}")
        if clip is not None and clip <= 0:
            raise ValueError(f"RunningNormalizer needs clip > 0 or None, got {clip}")
        if min_std < 0 or epsilon < 0:
            raise ValueError("RunningNormalizer needs min_std >= 0 and epsilon >= 0")
        if decay is not None and not 0.0 <= decay < 1.0:
            raise ValueError(f"RunningNormalizer needs 0 <= decay < 1 or None, got {decay}")
        self.size, self.dtype = size, dtype
        self.clip, self.min_std, self.epsilon, self.decay = clip, min_std, epsilon, decay
        self._mean = tf.Variable(tf.zeros([size], dtype), trainable=False, name="mean")
        self._variance = tf.Variable(tf.zeros([size], dtype), trainable=False, name="variance")
        # Observations fed so far, and the weight the statistics carry in a
        # merge (the same as the count unless ``decay`` is set).
        self._count = tf.Variable(tf.zeros([], dtype), trainable=False, name="count")
        self._weight = tf.Variable(tf.zeros([], dtype), trainable=False, name="weight")

    @property
    def mean(self) -> tf.Tensor:
        """[D] running mean (0 before any data)."""
        return tf.convert_to_tensor(self._mean)

    @property
    def variance(self) -> tf.Tensor:
        """[D] running population variance, dividing by the count (0 before any data)."""
        return tf.convert_to_tensor(self._variance)

    @property
    def count(self) -> tf.Tensor:
        """[] number of observations (vectors of size D) fed so far."""
        return tf.convert_to_tensor(self._count)

    @property
    def weight(self) -> tf.Tensor:
        """[] weight of the statistics in the next merge: the count, or 1 - decay^updates."""
        return tf.convert_to_tensor(self._weight)

    @property
    def std(self) -> tf.Tensor:
        """[D] the divisor ``normalize`` uses: sqrt(variance + epsilon), or 1 below min_std."""
        std = tf.sqrt(self._variance + tf.constant(self.epsilon, self.dtype))
        return tf.where(std < tf.constant(self.min_std, self.dtype), tf.ones_like(std), std)

    def update(self, batch) -> None:
        """Merges the observations in ``batch`` [..., D] (any number, 0 included)."""
        batch = tf.reshape(tf.cast(batch, self.dtype), [-1, self.size])
        n = tf.cast(tf.shape(batch)[0], self.dtype)
        batch_mean = tf.math.divide_no_nan(tf.reduce_sum(batch, 0), n)
        batch_variance = tf.math.divide_no_nan(tf.reduce_sum(tf.square(batch - batch_mean), 0), n)
        if self.decay is None:
            old_weight, batch_weight = self._weight.read_value(), n
        else:
            decay = tf.constant(self.decay, self.dtype)
            seen = n > 0  # An empty batch changes nothing.
            old_weight = tf.where(seen, decay * self._weight, self._weight)
            batch_weight = tf.where(seen, 1.0 - decay, tf.zeros([], self.dtype))
        weight = old_weight + batch_weight
        fraction = tf.math.divide_no_nan(batch_weight, weight)  # 0 while nothing was seen.
        delta = batch_mean - self._mean
        variance = ((1.0 - fraction) * self._variance + fraction * batch_variance
                    + fraction * (1.0 - fraction) * tf.square(delta))  # fmt: skip
        self._mean.assign_add(fraction * delta)
        self._variance.assign(variance)
        self._weight.assign(weight)
        self._count.assign_add(n)

    def normalize(self, x) -> tf.Tensor:
        """[..., D] -> clip((x - mean) / std, -clip, clip) [..., D].

        Floating inputs keep their dtype, others give float32. It is computed in
        float64 when the accumulators or ``x`` are float64, else in float32.
        """
        x = tf.convert_to_tensor(x)
        out_dtype = x.dtype if x.dtype.is_floating else tf.float32
        wide = tf.float64 in (out_dtype, self.dtype)
        compute = tf.float64 if wide else tf.float32
        mean = tf.cast(self._mean, compute)
        std = tf.cast(self.std, compute)
        normalized = (tf.cast(x, compute) - mean) / std
        if self.clip is not None:
            normalized = tf.clip_by_value(normalized, -self.clip, self.clip)
        return tf.cast(normalized, out_dtype)
