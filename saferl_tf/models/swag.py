"""SWAG: a Gaussian posterior over weights from the SGD trajectory (Maddox et al., 2019).

After ``burn_in`` updates, every ``period`` updates the weights w (all of the
given variables, flattened to [P]) are snapshotted into a moving mean and a
moving second moment (decay ``decay``; the first snapshot initializes them) and
a ring of at most ``max_columns`` deviation columns w - mean. A sample is

    w~ = mean + sqrt(scale) * (sqrt(var / 2) * z1 + D^T z2 / sqrt(2 (K - 1)))

with var = relu(second moment - mean^2), z1 ~ N(0, I_P), z2 ~ N(0, I_K), D the
K collected columns [K, P] (the low-rank term is off until K >= 2). The state
is ``tf.Variable``s, so ``collect`` runs inside a compiled train step and the
posterior lives in the checkpoint. Samples come back as per-variable tensors
with a leading sample axis, ready for Keras 3's ``stateless_call``::

    swag = SWAG(model.trainable_variables)
    swag.collect(step)                         # after each optimizer step
    weights = swag.sample_weights(5, seed)     # [[5, *v.shape] for v in variables]

``cyclic_learning_rate`` is the triangular schedule LAMBDA trains its world
model with while SWAG collects.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf


class SWAG(tf.Module):
    def __init__(self, variables, decay: float = 0.8, max_columns: int = 20,
                 burn_in: int = 500, period: int = 200, scale: float = 1.0,
                 min_snapshots: int = 1, name: str = "swag"):  # fmt: skip
        super().__init__(name=name)
        self._variables = list(variables)
        if not self._variables:
            raise ValueError("SWAG needs at least one variable")
        if max_columns < 1 or period < 1 or burn_in < 0 or min_snapshots < 1:
            raise ValueError(
                "SWAG needs max_columns >= 1, period >= 1, burn_in >= 0 and min_snapshots >= 1"
            )
        # Samples are drawn once this many snapshots exist; before, every sample
        # is the current weights (LAMBDA's code waits for all max_columns).
        self.min_snapshots = min_snapshots
        self.shapes = [tuple(v.shape) for v in self._variables]
        self.sizes = [int(np.prod(shape)) for shape in self.shapes]
        size = sum(self.sizes)
        self.decay, self.max_columns = decay, max_columns
        self.burn_in, self.period, self.scale = burn_in, period, scale
        dtype = self._variables[0].dtype
        self.mean = tf.Variable(tf.zeros([size], dtype), trainable=False, name="mean")
        self.second_moment = tf.Variable(tf.zeros([size], dtype), trainable=False,
                                         name="second_moment")  # fmt: skip
        self.deviations = tf.Variable(tf.zeros([max_columns, size], dtype), trainable=False,
                                      name="deviations")  # fmt: skip
        self.snapshots = tf.Variable(0, dtype=tf.int64, trainable=False, name="snapshots")

    @property
    def size(self) -> int:
        return sum(self.sizes)

    def flat(self) -> tf.Tensor:
        """The current weights as one vector [P]."""
        return tf.concat([tf.reshape(v, [-1]) for v in self._variables], 0)

    def unflatten(self, flat) -> list[tf.Tensor]:
        """[..., P] -> per-variable tensors [..., *shape]."""
        leading = tf.shape(flat)[:-1]
        parts = tf.split(flat, self.sizes, axis=-1)
        return [tf.reshape(part, tf.concat([leading, shape], 0))
                for part, shape in zip(parts, self.shapes)]  # fmt: skip

    def collect(self, step) -> tf.Tensor:
        """Snapshots the weights when ``step`` (updates done) is due; returns whether it did."""
        step = tf.cast(step, tf.int64)
        due = tf.logical_and(step >= self.burn_in, (step - self.burn_in) % self.period == 0)
        return tf.cond(due, self._snapshot, lambda: tf.constant(False))

    def _snapshot(self) -> tf.Tensor:
        weights = self.flat()
        first = tf.equal(self.snapshots, 0)
        decay = self.decay
        mean = tf.where(first, weights, decay * self.mean + (1 - decay) * weights)
        second = tf.where(first, weights**2, decay * self.second_moment + (1 - decay) * weights**2)
        self.mean.assign(mean)
        self.second_moment.assign(second)
        column = tf.cast(self.snapshots % self.max_columns, tf.int32)
        self.deviations.scatter_nd_update([[column]], [weights - mean])
        self.snapshots.assign_add(1)
        return tf.constant(True)

    @property
    def columns(self) -> tf.Tensor:
        """K, the deviation columns collected so far (at most ``max_columns``)."""
        return tf.minimum(self.snapshots, self.max_columns)

    def variance(self) -> tf.Tensor:
        return tf.nn.relu(self.second_moment - self.mean**2)

    def sample(self, z_diagonal, z_low_rank) -> tf.Tensor:
        """Flat samples [S, P] from standard normals z_diagonal [S, P], z_low_rank [S, K_max]."""
        dtype = self.mean.dtype
        diagonal = tf.sqrt(self.variance() / 2.0) * z_diagonal
        columns = tf.cast(self.columns, dtype)
        # Unfilled columns are zero and add nothing; with K < 2 the term is off.
        low_rank = tf.matmul(z_low_rank, self.deviations) / tf.sqrt(
            2.0 * tf.maximum(columns - 1.0, 1.0)
        )
        low_rank = tf.where(columns >= 2, low_rank, tf.zeros_like(low_rank))
        return self.mean + np.sqrt(self.scale) * (diagonal + low_rank)

    def sample_weights(self, num_samples: int, seed) -> list[tf.Tensor]:
        """``num_samples`` posterior samples as per-variable tensors [S, *shape].

        ``seed`` is a stateless seed (shape [2] int); before ``min_snapshots``
        snapshots exist every sample is the current weights.
        """
        seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 2)
        dtype = self.mean.dtype
        z_diagonal = tf.random.stateless_normal([num_samples, self.size], seeds[0], dtype=dtype)
        z_low_rank = tf.random.stateless_normal([num_samples, self.max_columns], seeds[1],
                                                dtype=dtype)  # fmt: skip
        flat = tf.cond(
            self.snapshots >= self.min_snapshots,
            lambda: self.sample(z_diagonal, z_low_rank),
            lambda: tf.tile(self.flat()[None], [num_samples, 1]),
        )
        return self.unflatten(flat)


def cyclic_learning_rate(step, low: float = 1e-4, high: float = 5e-4, step_size: int = 200):
    """Triangular cyclic rate: low -> high over ``step_size`` updates and back."""
    step = tf.cast(step, tf.float32)
    cycle_position = tf.abs(tf.math.floormod(step, 2.0 * step_size) / step_size - 1.0)
    return high - (high - low) * cycle_position
