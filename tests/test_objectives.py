"""The policy-search interface and GIBO's synthetic objectives (issue 4, in progress)."""

from __future__ import annotations

import numpy as np
import pytest

from saferl_tf.search.objectives import (
    GPSampleFunction,
    gp_sample_function,
    mean_distance_scale,
    synthetic_lengthscale,
)


def test_synthetic_functions_are_deterministic_and_round_trip(tmp_path):
    first, again = gp_sample_function(2, 3), gp_sample_function(2, 3)
    points = np.random.default_rng(0).random((5, 2))
    np.testing.assert_array_equal(first(points), again(points))
    assert not np.allclose(first(points), gp_sample_function(2, 4)(points))
    first.save(tmp_path / "f.npz")
    np.testing.assert_array_equal(GPSampleFunction.load(tmp_path / "f.npz")(points), first(points))
    assert synthetic_lengthscale(2) == pytest.approx(0.2)
    # dn(n) is the mean distance scale: dn(1) = sqrt(1/6) sqrt((1 + 2 sqrt(0.4)) / 3).
    assert mean_distance_scale(1) == pytest.approx(
        np.sqrt(1 / 6) * np.sqrt((1 + 2 * np.sqrt(0.4)) / 3)
    )
    assert first.support.shape == (1000, 2) and (first.support >= 0).all()


def test_run_counts_one_evaluation_per_objective_call():
    from saferl_tf.search.interface import Searcher

    class Walk(Searcher):
        def __init__(self):
            self.point = np.zeros(2)

        def ask(self):
            return self.point + 0.1

        def tell(self, parameters, value):
            self.point = parameters

    calls = []
    result = Walk().run(lambda p: calls.append(p) or -abs(p.sum() - 1.0), budget=8)
    assert len(calls) == 8 and result.parameters.shape == (8, 2)
    np.testing.assert_allclose(result.values, -np.abs(0.2 * np.arange(1, 9) - 1.0))
    np.testing.assert_allclose(result.best_so_far, np.maximum.accumulate(result.values))
    np.testing.assert_allclose(result.best_parameters, [0.5, 0.5])
