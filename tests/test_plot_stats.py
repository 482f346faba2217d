"""saferl_tf.analysis.stats: the interquartile mean and the stratified bootstrap.

References are computed here independently, in float64: scipy's trim_mean and the
explicit sort-and-trim formula for the IQM, and for the bootstrap the exact
distribution of the statistic over every possible resample (few runs make the
enumeration small), against which the Monte Carlo interval is checked.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.stats

from saferl_tf.analysis import stats


def explicit_iqm(scores) -> float:
    ordered = sorted(float(score) for score in scores)
    cut = int(0.25 * len(ordered))
    middle = ordered[cut : len(ordered) - cut]
    return sum(middle) / len(middle)


@pytest.mark.parametrize("count", range(1, 14))
def test_iqm_is_scipy_trim_mean_and_the_explicit_formula(count):
    scores = np.random.default_rng(count).standard_cauchy(count) * 100  # Heavy tails.
    assert stats.iqm(scores) == pytest.approx(scipy.stats.trim_mean(scores, 0.25), rel=1e-12)
    assert stats.iqm(scores) == pytest.approx(explicit_iqm(scores), rel=1e-12)


def test_iqm_by_hand_and_along_an_axis():
    assert stats.iqm([3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0]) == 3.5  # Mean of 2, 3, 4, 5.
    assert stats.iqm([1.0, 2.0, 100.0]) == pytest.approx(103 / 3)  # n < 4: the mean.
    assert stats.iqm([0.0, 1.0, 2.0, 1000.0]) == 1.5  # The outlier is dropped.
    table = np.random.default_rng(0).normal(size=(6, 9))
    np.testing.assert_allclose(stats.iqm(table), scipy.stats.trim_mean(table, 0.25, axis=-1))
    np.testing.assert_allclose(stats.iqm(table, axis=0), scipy.stats.trim_mean(table, 0.25, axis=0))


def exact_distribution(tasks, statistic, stratified=True):
    """Every equally likely resample's statistic: within each task (stratified) or
    from the pooled runs (not stratified)."""
    tasks = [np.asarray(task, np.float64) for task in tasks]
    if not stratified:
        pooled = np.concatenate(tasks)
        choices = itertools.product(range(pooled.size), repeat=pooled.size)
        return np.array([statistic(pooled[list(choice)]) for choice in choices])
    per_task = [list(itertools.product(task, repeat=task.size)) for task in tasks]
    return np.array([statistic(np.concatenate(parts)) for parts in itertools.product(*per_task)])


def assert_percentile_of(value, distribution, level, tolerance=0.004):
    """``value`` is the ``level`` quantile of the discrete ``distribution``: at most
    ``level`` of it lies strictly below, at least ``level`` at or below (within the
    Monte Carlo error of 50,000 resamples, about 0.0007 at 2.5%)."""
    assert np.mean(distribution < value) <= level + tolerance, (value, level)
    assert np.mean(distribution <= value) >= level - tolerance, (value, level)


def test_single_task_interval_is_the_exact_bootstrap_percentile_interval():
    scores = [-3.2, 0.4, 1.1, 2.5, 7.9]  # 5**5 = 3125 equally likely resamples.
    exact = exact_distribution([scores], explicit_iqm)
    interval = stats.stratified_bootstrap([scores])
    assert interval.estimate == pytest.approx(scipy.stats.trim_mean(scores, 0.25))
    assert_percentile_of(interval.low, exact, 0.025)
    assert_percentile_of(interval.high, exact, 0.975)
    # The mean's bootstrap distribution differs: the IQM really is the statistic used.
    exact_mean = exact_distribution([scores], np.mean)
    with pytest.raises(AssertionError):
        assert_percentile_of(interval.low, exact_mean, 0.025)


def test_resampling_stays_within_each_task():
    # Task b has no spread: resampled within itself it always gives four 100s, so the
    # IQM of the pool (trimming 2 of 8) is the mean of a's 3rd and 4th smallest and two
    # 100s; drawn from the pooled runs, the number of 100s would vary and widen it.
    a, b = [0.0, 1.0, 4.0, 9.0], [100.0] * 4
    interval = stats.stratified_bootstrap([a, b])
    stratified = exact_distribution([a, b], explicit_iqm)
    assert_percentile_of(interval.low, stratified, 0.025)
    assert_percentile_of(interval.high, stratified, 0.975)
    assert interval.high <= (9.0 + 9.0 + 200.0) / 4  # The largest stratified value.
    rng = np.random.default_rng(0)  # Too many pooled resamples (8**8) to enumerate.
    pooled = np.concatenate([a, b])[rng.integers(0, 8, (50_000, 8))]
    pooled_low, pooled_high = np.percentile(stats.iqm(pooled), [2.5, 97.5])
    assert pooled_high - pooled_low > 5 * (interval.high - interval.low)


def test_tasks_without_spread_give_a_zero_width_interval():
    for statistic in (stats.iqm, lambda x: np.mean(x, axis=-1)):
        interval = stats.stratified_bootstrap([[0.0] * 5, [10.0] * 5], statistic, resamples=500)
        assert interval == (5.0, 5.0, 5.0)
    # A task of different size keeps its size in every resample: 3 zeros and 6 tens.
    interval = stats.stratified_bootstrap(
        [[0.0] * 3, [10.0] * 6], lambda x: np.mean(x, axis=-1), resamples=500
    )
    assert interval == pytest.approx((20 / 3, 20 / 3, 20 / 3))


def test_indices_of_each_task_fall_in_its_own_runs():
    rng = np.random.default_rng(0)
    indices = stats.stratified_indices([3, 1, 5], 2000, rng)
    assert indices.shape == (2000, 9)
    assert ((indices[:, :3] >= 0) & (indices[:, :3] < 3)).all()
    assert (indices[:, 3] == 3).all()
    assert ((indices[:, 4:] >= 4) & (indices[:, 4:] < 9)).all()
    # With replacement, and every run of a task is drawn.
    assert set(np.unique(indices[:, 4:])) == set(range(4, 9))
    assert any(len(set(row)) < 5 for row in indices[:, 4:])


def test_interval_holds_the_estimate_narrows_with_runs_and_is_reproducible():
    scores = np.random.default_rng(7).normal(10.0, 3.0, 320)
    widths = []
    for count in (5, 20, 80, 320):
        interval = stats.stratified_bootstrap([scores[:count]], resamples=5000)
        assert interval.low < interval.estimate < interval.high
        widths.append(interval.high - interval.low)
    # About 1/sqrt(runs): halving per 4 times the runs, give or take the sample's luck.
    assert all(wide > narrow for wide, narrow in zip(widths, widths[1:])), widths
    assert widths[0] > 4 * widths[-1], widths
    again = stats.stratified_bootstrap([scores[:20]], resamples=5000)
    assert again == stats.stratified_bootstrap([scores[:20]], resamples=5000)
    assert again != stats.stratified_bootstrap([scores[:20]], resamples=5000, seed=1)
    wider = stats.stratified_bootstrap([scores[:20]], resamples=5000, confidence=0.99)
    assert wider.low < again.low and wider.high > again.high


def test_resamples_are_drawn_in_blocks_totalling_the_number_asked(monkeypatch):
    rows = []

    def mean(values):
        rows.append(values.shape[0])
        return values.mean(axis=-1)

    monkeypatch.setattr(stats, "_BLOCK_VALUES", 40)  # 40 // 6 runs: blocks of 6 resamples.
    stats.stratified_bootstrap([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], mean, resamples=27)
    assert rows == [6, 6, 6, 6, 3, 1]  # The resample blocks, then the estimate.


@pytest.mark.parametrize(
    "tasks, kwargs, words",
    [
        ([], {}, "at least one run"),
        ([[1.0], []], {}, "at least one run"),
        ([[1.0, np.nan]], {}, "finite"),
        ([[1.0]], {"resamples": 0}, "resamples"),
        ([[1.0]], {"confidence": 1.0}, "confidence"),
    ],
)
def test_unusable_input_is_refused(tasks, kwargs, words):
    with pytest.raises(ValueError, match=words):
        stats.stratified_bootstrap(tasks, **kwargs)
