"""The cross-entropy method over action sequences.

``cem_minimize`` is pure TensorFlow with static shapes, so a planner calls it
inside its compiled step::

    config = CEMConfig(horizon=20, samples=500, elites=50, iterations=5, initial_std=5.0)
    result = cem_minimize(objective, initial_mean [H, A], config, seed [2])
    result.best  # [H, A], the lowest-valued sample seen; result.mean, result.std: [H, A]
    warm = shift_plan(result.mean)  # next control step's initial mean
    warm = shift_plan(result.best, repeat_last=True)  # or SafeExploration's

``objective(sequences [N, H, A]) -> values [N]`` (lower is better). Samples
are drawn from N(mean, std²) and clipped to [low, high]; the next mean and
std are those of the ``elites`` best samples (with optional smoothing
``momentum``: new = momentum · old + (1 − momentum) · elite statistic).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import NamedTuple

import tensorflow as tf

from saferl_tf.errors import ConfigError


@dataclasses.dataclass
class CEMConfig:
    """CEM settings; the defaults are the seed's (actions normalized to [-1, 1])."""

    horizon: int = 20
    samples: int = 500
    elites: int = 50
    iterations: int = 5
    initial_std: float = 5.0
    low: float = -1.0
    high: float = 1.0
    momentum: float = 0.0

    def check(self) -> None:
        if min(self.horizon, self.samples, self.elites, self.iterations) < 1:
            raise ConfigError("CEM needs horizon, samples, elites and iterations >= 1")
        if self.elites > self.samples:
            raise ConfigError(f"CEM elites ({self.elites}) cannot exceed samples ({self.samples})")
        if not self.low < self.high:
            raise ConfigError(f"CEM bounds need low < high, got {self.low}, {self.high}")
        if not 0.0 <= self.momentum < 1.0:
            raise ConfigError(f"CEM momentum must be in [0, 1), got {self.momentum}")


class CEMResult(NamedTuple):
    mean: tf.Tensor  # [H, A] (batched: [B, H, A])
    std: tf.Tensor  # [H, A]
    best: tf.Tensor  # [H, A]
    best_value: tf.Tensor  # [] (batched: [B])


def sample_sequences(mean, std, count: int, low: float, high: float, seed) -> tf.Tensor:
    """count samples of N(mean, std²) clipped to [low, high]: [count, *mean.shape]."""
    noise = tf.random.stateless_normal([count, *mean.shape], seed, dtype=mean.dtype)
    return tf.clip_by_value(mean + std * noise, low, high)


def sample_batches(mean, std, count: int, low: float, high: float, seeds) -> tf.Tensor:
    """``sample_sequences`` per batch entry b with its own seed: mean, std
    [B, ...], seeds [B, 2] -> [B, count, ...] (entry b draws what an unbatched
    call with seeds[b] draws)."""
    return tf.stack([sample_sequences(mean[b], std[b], count, low, high, seeds[b])
                     for b in range(mean.shape[0])])  # fmt: skip


def split_seeds(seeds, count: int) -> tf.Tensor:
    """seeds [B, 2] -> [count, B, 2]: each entry's own ``stateless_split``."""
    parts = [tf.random.experimental.stateless_split(seeds[b], count) for b in range(seeds.shape[0])]
    return tf.stack(parts, axis=1)


def elite_update(samples, values, elites: int, mean, std, momentum: float):
    """The mean and std of the ``elites`` lowest-valued samples (smoothed) and
    the best sample with its value. samples [B, N, ...], values [B, N]."""
    _, index = tf.math.top_k(-values, k=elites)
    chosen = tf.gather(samples, index, batch_dims=1)
    elite_mean = tf.reduce_mean(chosen, axis=1)
    elite_std = tf.math.reduce_std(chosen, axis=1)
    new_mean = momentum * mean + (1.0 - momentum) * elite_mean
    new_std = momentum * std + (1.0 - momentum) * elite_std
    return new_mean, new_std, chosen[:, 0], tf.gather(values, index[:, 0], batch_dims=1)


def cem_minimize(
    objective: Callable[[tf.Tensor], tf.Tensor],
    initial_mean: tf.Tensor,
    config: CEMConfig,
    seed: tf.Tensor,
    initial_std: tf.Tensor | None = None,
) -> CEMResult:
    """Minimizes ``objective`` over [H, A] sequences (see the module docstring).

    Args:
      initial_mean: [H, A] (a warm start, or zeros).
      seed: [2] int32 stateless seed.
      initial_std: [H, A] or None for ``config.initial_std`` everywhere.
    """
    result = cem_minimize_batched(
        lambda sequences: objective(sequences[0])[None], tf.convert_to_tensor(initial_mean)[None],
        config, tf.convert_to_tensor(seed)[None],
        None if initial_std is None else tf.convert_to_tensor(initial_std)[None],
    )  # fmt: skip
    return CEMResult(*(part[0] for part in result))


def cem_minimize_batched(
    objective: Callable[[tf.Tensor], tf.Tensor],
    initial_mean: tf.Tensor,
    config: CEMConfig,
    seeds: tf.Tensor,
    initial_std: tf.Tensor | None = None,
) -> CEMResult:
    """B independent problems at once (B environments' plans): objective
    (sequences [B, N, H, A]) -> values [B, N]; initial_mean [B, H, A]; seeds
    [B, 2]. Entry b gives what ``cem_minimize`` with seeds[b] gives."""
    mean = tf.convert_to_tensor(initial_mean, tf.float32)
    std = (
        tf.fill(tf.shape(mean), tf.constant(config.initial_std, tf.float32))
        if initial_std is None
        else tf.convert_to_tensor(initial_std, tf.float32)
    )
    seeds = split_seeds(tf.cast(seeds, tf.int32), config.iterations)  # [I, B, 2]

    def body(iteration, mean, std, best, best_value):
        samples = sample_batches(mean, std, config.samples, config.low, config.high,
                                 seeds[iteration])  # fmt: skip
        mean, std, candidate, value = elite_update(
            samples, objective(samples), config.elites, mean, std, config.momentum
        )
        better = value < best_value
        best = tf.where(better[:, None, None], candidate, best)
        return iteration + 1, mean, std, best, tf.where(better, value, best_value)

    # A while loop, not unrolled iterations: compiling stays quick.
    _, mean, std, best, best_value = tf.while_loop(
        lambda iteration, *_: iteration < config.iterations,
        body,
        [
            tf.constant(0),
            mean,
            std,
            tf.clip_by_value(mean, config.low, config.high),
            tf.fill([mean.shape[0]], float("inf")),
        ],
    )
    return CEMResult(mean, std, best, best_value)


def shift_plan(plan: tf.Tensor, fill: float = 0.0, axis: int = 0,
               repeat_last: bool = False) -> tf.Tensor:  # fmt: skip
    """Drops the first step of [H, ...] (along ``axis``) and appends ``fill``,
    or the last step again (``repeat_last``): the next warm start."""
    rest = tf.gather(plan, tf.range(1, plan.shape[axis]), axis=axis)
    last = tf.gather(plan, [plan.shape[axis] - 1], axis=axis)
    tail = last if repeat_last else tf.fill(tf.shape(last), tf.constant(fill, plan.dtype))
    return tf.concat([rest, tail], axis=axis)
