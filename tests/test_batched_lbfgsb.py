"""Independent L-BFGS-B runs evaluated in lockstep: each run's result is the one
SciPy gives alone, the function sees only live runs, and errors reach the caller."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize

from saferl_tf.bo.batched_lbfgsb import minimize_batched

BOUNDS = [(-2.0, 2.0), (-1.0, 3.0)]


def rosenbrock(points):
    """Values [B] and gradients [B, 2] of Rosenbrock's function, row by row."""
    x, y = points[:, 0], points[:, 1]
    values = (1 - x) ** 2 + 100 * (y - x**2) ** 2
    gradients = np.stack([-2 * (1 - x) - 400 * x * (y - x**2), 200 * (y - x**2)], axis=1)
    return values, gradients


def test_each_run_matches_scipy_alone_and_the_batch_shrinks_as_runs_end():
    starts = np.random.default_rng(0).uniform([-2, -1], [2, 3], size=(5, 2))
    sizes = []

    def batched(points):
        sizes.append(len(points))
        return rosenbrock(points)

    results = minimize_batched(batched, starts, BOUNDS)
    for start, result in zip(starts, results):
        alone = minimize(lambda p: tuple(a[0] for a in rosenbrock(p[None])), start, jac=True,
                         method="L-BFGS-B", bounds=BOUNDS, options={"maxiter": 2000})  # fmt: skip
        np.testing.assert_allclose(result.x, alone.x, rtol=0, atol=1e-12)
        assert result.nfev == alone.nfev and result.nit == alone.nit
    # One call per round: as many calls as the longest run's evaluations, and
    # every evaluation of every run answered in one of them.
    assert len(sizes) == max(result.nfev for result in results)
    assert sum(sizes) == sum(result.nfev for result in results)
    assert sizes[0] == 5 and sizes == sorted(sizes, reverse=True) and sizes[-1] < 5
    np.testing.assert_allclose(results[0].x, [1.0, 1.0], atol=1e-3)


def test_a_function_error_reaches_the_caller_and_no_thread_is_left_waiting():
    calls = []

    def failing(points):
        calls.append(len(points))
        if len(calls) == 3:
            raise FloatingPointError("the acquisition returned NaN")
        return rosenbrock(points)

    with pytest.raises(FloatingPointError, match="NaN"):
        minimize_batched(failing, np.zeros((3, 2)), BOUNDS)
    assert calls == [3, 3, 3]


def test_starts_must_be_a_matrix():
    with pytest.raises(ValueError, match=r"starts must be \[runs, dimension\]"):
        minimize_batched(rosenbrock, np.zeros(2), BOUNDS)


def test_results_do_not_depend_on_the_order_in_which_runs_hand_in_points():
    """A row's value may depend on its place in the batch (vectorized kernels
    round differently); the batch is in run order, so repeated solves agree to
    the bit however the threads are scheduled."""

    def place_sensitive(points):
        values, gradients = rosenbrock(points)
        return values + 1e-7 * np.arange(len(points)), gradients

    starts = np.random.default_rng(1).uniform([-2, -1], [2, 3], size=(6, 2))
    first = np.stack([r.x for r in minimize_batched(place_sensitive, starts, BOUNDS)])
    for _ in range(20):
        again = np.stack([r.x for r in minimize_batched(place_sensitive, starts, BOUNDS)])
        np.testing.assert_array_equal(again, first)


def test_an_interrupt_ends_every_run_thread():
    import threading

    before = threading.active_count()
    calls = []

    def interrupted(points):
        calls.append(len(points))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return rosenbrock(points)

    with pytest.raises(KeyboardInterrupt):
        minimize_batched(interrupted, np.zeros((4, 2)), BOUNDS)
    for thread in threading.enumerate():
        if thread is not threading.current_thread() and thread.daemon:
            thread.join(timeout=5)
    assert threading.active_count() == before
