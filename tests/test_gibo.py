"""GIBOSearcher (issue 4, in progress): the ask/tell cycle and a 2-D synthetic search."""

from __future__ import annotations

import numpy as np
import pytest

from saferl_tf.search.gibo import GIBOConfig, GIBOSearcher
from saferl_tf.search.objectives import gp_sample_function


def test_ask_tell_cycle_and_data_limit():
    searcher = GIBOSearcher(np.full(3, 0.5), GIBOConfig(fit_hyperparameters=False), seed=0)
    np.testing.assert_array_equal(searcher.ask(), np.full(3, 0.5))  # The centre first.
    for _ in range(40):
        point = searcher.ask()
        assert np.all(np.abs(point - searcher.theta) <= 0.2 + 1e-9)  # Inside theta +- delta.
        searcher.tell(point, -np.sum((point - 0.8) ** 2))
    assert len(searcher.y) == 15  # N_max = 5 D newest points.
    assert searcher.steps > 5
    keep_all = GIBOSearcher(np.full(3, 0.5), GIBOConfig(max_data=0, fit_hyperparameters=False))
    for _ in range(20):
        point = keep_all.ask()
        keep_all.tell(point, -np.sum(point**2))
    assert len(keep_all.y) == 20  # The switch turns the limit off.


def test_gibo_gets_within_5_percent_on_a_2d_synthetic_function():
    # Function 0 of D = 2 has its global maximum in the basin of the start
    # 0.5 * 1 (GIBO is a local method; function 1 of D = 2 has not: GIBO stops
    # at a local maximum there, 28% of the range below).
    function = gp_sample_function(2, 0)
    grid = np.stack(np.meshgrid(*[np.linspace(0, 1, 201)] * 2), -1).reshape(-1, 2)
    values = function(grid)
    top, span = values.max(), values.max() - values.min()
    noise = np.random.default_rng(0)
    searcher = GIBOSearcher(np.full(2, 0.5), bounds=(np.zeros(2), np.ones(2)), seed=0)
    result = searcher.run(lambda p: function(p[None])[0] + noise.normal(0, 0.1), 100)
    assert len(result.values) == 100
    assert top - function(result.parameters).max() < 0.05 * span
    assert top - function(searcher.theta[None])[0] < 0.05 * span


@pytest.mark.slow
def test_gibo_balances_cartpole_within_100_evaluations_in_most_seeds():
    from saferl_tf.search.policies import EpisodeObjective

    reached = 0
    for seed in range(3):
        objective = EpisodeObjective("gym_CartPole-v1", seed=seed)
        searcher = GIBOSearcher(np.zeros(4), seed=seed)
        for _ in range(100):
            parameters = searcher.ask()
            value = objective(parameters)
            searcher.tell(parameters, value)
            if value >= 500:
                reached += 1
                break
    assert reached >= 2  # Measured: all 3 seeds, after 22, 18 and 9 evaluations.
