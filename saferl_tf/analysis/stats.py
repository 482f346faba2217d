"""Interquartile mean and stratified-bootstrap confidence intervals over runs.

As recommended by Agarwal et al., "Deep Reinforcement Learning at the Edge of the
Statistical Precipice" (NeurIPS 2021), with the definitions of their ``rliable``
library, in NumPy only::

    iqm([3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0])  # 3.5: the mean of 2, 3, 4, 5
    interval = stratified_bootstrap([env_a_scores, env_b_scores])  # Interval(estimate, low, high)

``iqm`` is ``scipy.stats.trim_mean(scores, 0.25)`` (rliable's ``aggregate_iqm``):
``n // 4`` scores are dropped from each end of the sorted scores and the rest are
averaged, so it is the plain mean for fewer than 4 scores. The stratified bootstrap
resamples the runs of each task (environment) with replacement, independently per
task and keeping each task's number of runs, pools the resampled scores, and takes
the statistic of the pool; the interval is the percentile interval of those
statistics (rliable's default method and 95% level). rliable draws 50,000 resamples
by default; so does ``BOOTSTRAP_RESAMPLES`` here. The generator is seeded, so the
same scores always give the same interval. Pooling tasks only makes sense for scores
on a common scale (rliable normalizes them first), so ``tools/plot.py --table``
bootstraps each environment on its own, as a single stratum.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np

# From this many runs on, tables report IQM [95% CI]; with fewer, mean ± std only.
# Below 4 runs the IQM drops nothing (it is the mean), at 4 it is the mean of two
# runs, and a bootstrap over 4 runs has only 35 distinct resamples, so an interval
# would look far more precise than 4 runs can be.
MIN_RUNS_FOR_IQM = 5
BOOTSTRAP_RESAMPLES = 50_000  # rliable's default ``reps``.
CONFIDENCE = 0.95
BOOTSTRAP_SEED = 0
# Resamples are drawn in blocks of at most this many values, to bound memory when
# there are many runs (50,000 resamples of 100 runs would be 40 MB at once).
_BLOCK_VALUES = 1_000_000

Statistic = Callable[[np.ndarray], np.ndarray]


class Interval(NamedTuple):
    """A point estimate and its confidence interval ``low <= high``."""

    estimate: float
    low: float
    high: float


def iqm(scores, axis: int = -1) -> np.ndarray:
    """The interquartile mean along ``axis``: ``scipy.stats.trim_mean(scores, 0.25, axis)``.

    Sorts along ``axis``, drops ``n // 4`` values from each end and averages the rest.
    """
    scores = np.sort(np.asarray(scores, np.float64), axis=axis)
    count = scores.shape[axis]
    if count == 0:
        raise ValueError("the IQM of no scores is undefined")
    cut = count // 4  # scipy's int(0.25 * n): the same for every n >= 0.
    return np.take(scores, np.arange(cut, count - cut), axis=axis).mean(axis=axis)


def stratified_indices(
    sizes: Sequence[int], resamples: int, rng: np.random.Generator
) -> np.ndarray:
    """Indices [resamples, sum(sizes)] into the concatenated tasks: columns of task t
    hold indices drawn with replacement from task t's own runs only."""
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    return np.concatenate(
        [offset + rng.integers(0, size, (resamples, size)) for offset, size in zip(offsets, sizes)],
        axis=1,
    )


def stratified_bootstrap(
    scores_by_task: Sequence,
    statistic: Statistic = iqm,
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    confidence: float = CONFIDENCE,
    seed: int = BOOTSTRAP_SEED,
) -> Interval:
    """``statistic`` of the pooled scores with a percentile stratified-bootstrap interval.

    ``scores_by_task``: one 1-D array of run scores per task (tasks may have different
    numbers of runs). ``statistic`` maps an array [R, N] to [R] along the last axis (as
    ``iqm`` and ``np.mean`` with ``axis=-1`` do); it gets the pooled scores [1, N] for
    the estimate and each resample's [block, N] for the interval. Raises ``ValueError``
    for a task without runs, a non-finite score, ``resamples < 1`` or a ``confidence``
    outside (0, 1).
    """
    tasks = [np.asarray(task, np.float64).ravel() for task in scores_by_task]
    if not tasks or any(task.size == 0 for task in tasks):
        raise ValueError("every task needs at least one run")
    pooled = np.concatenate(tasks)
    if not np.isfinite(pooled).all():
        raise ValueError("scores must be finite")
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    rng = np.random.default_rng(seed)
    sizes = [task.size for task in tasks]
    block = max(1, _BLOCK_VALUES // pooled.size)
    values = np.concatenate(
        [
            statistic(pooled[stratified_indices(sizes, min(block, resamples - start), rng)])
            for start in range(0, resamples, block)
        ]
    )
    tail = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.percentile(values, [tail, 100.0 - tail])
    estimate = float(np.asarray(statistic(pooled[None, :])).reshape(()))
    return Interval(estimate, float(low), float(high))
