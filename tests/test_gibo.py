"""GIBOSearcher: the ask/tell cycle, its success rate on GIBO's synthetic functions,
and CartPole."""

from __future__ import annotations

import numpy as np
import pytest

from saferl_tf.search.gibo import GIBOConfig, GIBOSearcher
from saferl_tf.search.objectives import cached_gp_sample_function


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


def _final_regrets(functions_dir, indices, dimension=2, budget=100) -> list[float]:
    """Normalized regret (f* - f(theta)) / (f* - f(theta_0)) of GIBO's final
    parameters, at its defaults, on GP-sample functions observed with noise 0.1."""
    regrets = []
    for index in indices:
        function = cached_gp_sample_function(dimension, index, functions_dir)
        start = np.full(dimension, 0.5)
        noise = np.random.default_rng(index)

        def noisy(parameters, function=function, noise=noise):
            return function(parameters[None])[0] + noise.normal(0, 0.1)

        searcher = GIBOSearcher(start, bounds=(np.zeros(dimension), np.ones(dimension)),
                                seed=index)  # fmt: skip
        searcher.run(noisy, budget)
        gap = function.max_value - function(start[None])[0]
        regrets.append((function.max_value - function(searcher.theta[None])[0]) / gap)
    return regrets


# GIBO's synthetic benchmark (Mueller et al., NeurIPS 2021): GP-sample functions
# on [0, 1]^D started at 0.5 * 1, observation noise 0.1, scored by normalized
# regret (the paper divides f* - f by f*, here by the start's gap f* - f(x0)).
# The paper reports mean regret curves over many functions; this repository's
# reproduction of that protocol
# (docs/BENCHMARKS.md) has GIBO's mean at 0.13 (D = 4) and 0.04 (D = 8) after
# 300 evaluations. A function counts as solved when the final parameters are
# within a quarter of the start's gap to the global maximum (regret <= 0.25,
# about twice those means), and at least half of the functions must be: not
# all, since GIBO is local and stops at a local maximum where the global one
# lies outside the start's basin (functions 1 and 3 of D = 2, about half the
# gap below; at D = 2 such functions are common). Measured after 100
# evaluations (33 steps) on functions 0-7: 6 solved, regrets 0.005-0.19. With
# the gradient's sign flipped, no step (learning rate 0) or an acquisition
# that never queries, none of 16 is solved: every regret is >= 1.
REGRET, SHARE = 0.25, 0.5


def test_gibo_solves_most_2d_synthetic_functions(tmp_path):
    regrets = _final_regrets(tmp_path, range(8))
    solved = sum(regret <= REGRET for regret in regrets)
    assert solved >= SHARE * len(regrets), np.round(regrets, 3)
    assert min(regrets) >= -1e-9  # Nothing beats the computed maximum.


@pytest.mark.slow
def test_gibo_solves_most_of_16_synthetic_functions_at_the_papers_budget(tmp_path):
    regrets = _final_regrets(tmp_path, range(16), budget=300)
    solved = sum(regret <= REGRET for regret in regrets)
    assert solved >= SHARE * len(regrets), np.round(regrets, 3)


def test_the_package_exports_the_searchers_lazily(python, subprocess_env):
    import subprocess

    from saferl_tf import search
    from saferl_tf.search import (
        ARSSearcher,
        BOSearcher,
        CMAESSearcher,
        GIBOSearcher,
        baselines,
        experiment,
        run_search,
    )

    assert GIBOSearcher is search.gibo.GIBOSearcher and run_search is experiment.run_search
    assert (ARSSearcher, BOSearcher, CMAESSearcher) == (
        baselines.ARSSearcher, baselines.BOSearcher, baselines.CMAESSearcher)  # fmt: skip
    assert set(search.__all__) <= set(dir(search))
    with pytest.raises(AttributeError, match="no attribute 'GIBO'"):
        search.GIBO  # noqa: B018
    # The package itself stays light: TensorFlow only comes with a searcher.
    code = "import sys, saferl_tf.search; print('tensorflow' in sys.modules)"
    result = subprocess.run([python, "-c", code], capture_output=True, text=True,
                            env=subprocess_env)  # fmt: skip
    assert result.stdout.strip() == "False", result.stderr


@pytest.mark.parametrize("fit_when", ["after_queries", "window_full"])
def test_hyperparameters_are_fitted_when_the_setting_says(fit_when):
    """'after_queries': after each round of queries once N > D; 'window_full' (the
    published code): once per iteration, after the centre is told and before the
    first query, and only when the window holds N_max = 5 D points."""
    config = GIBOConfig(fit_when=fit_when, epsilon=None)
    searcher = GIBOSearcher(np.full(2, 0.5), config, seed=1)
    events = []
    searcher._fit = lambda: events.append(("fit", len(searcher.y), searcher._queries_left))
    rng = np.random.default_rng(0)
    for _ in range(18):
        point = searcher.ask()
        searcher.tell(point, float(-np.sum((point - 0.7) ** 2) + rng.normal(0, 0.01)))
    sizes = [size for _, size, _ in events]
    if fit_when == "after_queries":
        # Rounds of 1 centre + 2 queries: a fit after each, from N = 3 > D on.
        assert sizes == [3, 6, 9, 10, 10, 10]
        assert all(left == 0 for _, _, left in events)
    else:
        # The window (10 points) is full from the 10th evaluation on: the centres
        # told at evaluations 10, 13 and 16, each before its 2 queries.
        assert sizes == [10, 10, 10] and all(left == 2 for _, _, left in events)


def test_without_epsilon_every_query_is_made():
    searcher = GIBOSearcher(np.full(3, 0.5), GIBOConfig(epsilon=None, max_queries=3,
                                                        fit_hyperparameters=False))  # fmt: skip
    for _ in range(12):
        point = searcher.ask()
        searcher.tell(point, 0.0)  # A flat function: the trace still falls with each query.
    assert searcher.steps == 3  # 3 rounds of 1 centre + 3 queries.
    with pytest.raises(Exception, match="accepted: after_queries, window_full"):
        GIBOSearcher(np.full(3, 0.5), GIBOConfig(fit_when="sometimes"))


@pytest.mark.parametrize("epsilon, round_size", [(1e9, 3), (-1.0, 5)])
def test_epsilon_stops_after_the_query_that_falls_short(epsilon, round_size):
    """As published: the first query of a round is always made, and the query
    whose trace reduction is below epsilon is still evaluated, as the last.
    A huge epsilon: the centre and 2 queries per round; a negative one: all D = 4."""
    config = GIBOConfig(epsilon=epsilon, fit_hyperparameters=False)
    searcher = GIBOSearcher(np.full(4, 0.5), config)
    steps_after_each_tell = []
    for _ in range(3 * round_size):
        searcher.tell(searcher.ask(), 0.0)
        steps_after_each_tell.append(searcher.steps)
    expected = [(i + 1) // round_size for i in range(3 * round_size)]
    assert steps_after_each_tell == expected
