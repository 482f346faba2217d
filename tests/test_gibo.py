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
                                seed=index, synthetic=True)  # fmt: skip
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
# gap below; at D = 2 such functions are common). Measured with the published
# fitting (the defaults since issue 17) after 100 evaluations (33 steps) on
# functions 0-7: 6 solved, regrets 0.006-0.19; after 300 on functions 0-15:
# 10 solved. With
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


@pytest.mark.parametrize("outputscale_prior_kind", ["uniform", "normal"])
def test_the_map_loss_against_scipy(outputscale_prior_kind):
    """Raw values and a constant mean: the fit's loss is the negative log
    density of the data (scipy), minus, for the Normal outputscale prior, its
    log density at the outputscale itself (no Jacobian: GPflow's prior on the
    constrained value, as the published code's gpytorch counts it); a uniform
    prior is flat inside its box."""
    from scipy.stats import multivariate_normal, norm

    rng = np.random.default_rng(0)
    x, y = rng.uniform(size=(12, 3)), rng.normal(3.0, 1.0, 12)
    lengthscales, outputscale, noise, mean = np.array([0.2, 0.4, 0.3]), 1.7, 0.05, 2.5
    prior = (0.1, 5.0) if outputscale_prior_kind == "uniform" else (2.0, 1.0)
    config = GIBOConfig(
        lengthscale_bounds=(0.1, 0.5), outputscale_prior=prior,
        outputscale_prior_kind=outputscale_prior_kind, noise_variance=noise,
    )  # fmt: skip
    searcher = GIBOSearcher(np.full(3, 0.5), config)
    model = searcher._model()
    model.data[0].assign(x)
    model.data[1].assign(y[:, None])
    model.kernel.lengthscales.assign(lengthscales)
    model.kernel.variance.assign(outputscale)
    model.mean_function.c.assign([mean])
    squared = (((x[:, None, :] - x[None, :, :]) / lengthscales) ** 2).sum(-1)
    covariance = outputscale * np.exp(-0.5 * squared) + noise * np.eye(12)
    expected = -multivariate_normal(np.full(12, mean), covariance).logpdf(y)
    if outputscale_prior_kind == "normal":
        expected -= norm(*prior).logpdf(outputscale)
    assert float(model.training_loss()) == pytest.approx(expected, rel=1e-9)
    # Trained: the lengthscales, the outputscale and the mean; the noise and the data are not.
    shapes = sorted(tuple(variable.shape) for variable in model.trainable_variables)
    assert shapes == [(), (1,), (3,)]


def test_the_published_priors_and_raw_values_keep_their_bounds_and_resume():
    from saferl_tf.search.objectives import synthetic_lengthscale

    config = GIBOConfig(lengthscale_prior="paper_synthetic", outputscale_prior_kind="uniform",
                        outputscale_prior=(0.1, 5.0), outputscale=2.55, standardize=False,
                        noise_variance=0.01, fit_when="window_full", epsilon=None)  # fmt: skip
    searcher = GIBOSearcher(np.full(4, 0.5), config, seed=3)
    scale = synthetic_lengthscale(4)
    assert searcher.lengthscale_bounds == pytest.approx((0.7 * scale, 1.3 * scale))
    np.testing.assert_allclose(searcher.lengthscales, scale)
    rng = np.random.default_rng(1)
    for _ in range(45):  # The window (20 points) fills at the 20th evaluation.
        point = searcher.ask()
        searcher.tell(point, float(5.0 - np.sum((point - 0.6) ** 2) + rng.normal(0, 0.1)))
    assert np.all((searcher.lengthscales >= 0.7 * scale - 1e-9)
                  & (searcher.lengthscales <= 1.3 * scale + 1e-9))  # fmt: skip
    assert 0.1 <= searcher.outputscale <= 5.0
    assert searcher.noise == 0.01
    assert searcher.mean > 1.0  # Fitted to the raw values (about 5).
    resumed = GIBOSearcher(np.full(4, 0.5), config, seed=3)
    resumed.load_state(searcher.state())
    assert resumed.mean == searcher.mean
    np.testing.assert_array_equal(resumed.ask(), searcher.ask())
    old_state = searcher.state()
    old_state.pop("mean")  # Saved before the constant mean existed.
    resumed.load_state(old_state)
    assert resumed.mean == 0.0


def test_the_fit_recovers_a_known_gps_hyperparameters_with_the_noise_fixed():
    """Data drawn from a GP with lengthscales (0.15, 0.45), outputscale 1.5 and
    noise 0.01: the MAP fit (flat priors wide around the truth) lands near it
    and leaves the configured noise as it is."""
    rng = np.random.default_rng(7)
    x = rng.uniform(size=(160, 2))
    truth, outputscale, noise = np.array([0.15, 0.45]), 1.5, 0.01
    squared = (((x[:, None, :] - x[None, :, :]) / truth) ** 2).sum(-1)
    covariance = outputscale * np.exp(-0.5 * squared) + noise * np.eye(len(x))
    y = np.linalg.cholesky(covariance) @ rng.normal(size=len(x))
    config = GIBOConfig(lengthscale_bounds=(0.02, 1.0), outputscale_prior_kind="uniform",
                        outputscale_prior=(0.1, 10.0), max_data=0)  # fmt: skip
    searcher = GIBOSearcher(np.full(2, 0.5), config)
    searcher.x, searcher.y = x, y
    searcher._fit()
    np.testing.assert_allclose(searcher.lengthscales, truth, rtol=0.3)
    assert 0.5 * outputscale <= searcher.outputscale <= 2.0 * outputscale
    assert searcher.noise == 0.01 and abs(searcher.mean) < 1.0


def test_a_lengthscale_at_its_bound_comes_back_when_the_data_ask():
    """A fit that starts with both lengthscales at the upper bound 1.0 (where an
    earlier fit left them) on data with lengthscales (0.15, 0.45) finds them
    again: the bounds are the optimizer's, not a transform whose gradient
    vanishes at them (that froze every lengthscale a fit had pushed there)."""
    rng = np.random.default_rng(7)
    x = rng.uniform(size=(160, 2))
    truth = np.array([0.15, 0.45])
    squared = (((x[:, None, :] - x[None, :, :]) / truth) ** 2).sum(-1)
    y = np.linalg.cholesky(1.5 * np.exp(-0.5 * squared) + 0.01 * np.eye(len(x))) @ rng.normal(
        size=len(x))  # fmt: skip
    config = GIBOConfig(lengthscale_bounds=(0.02, 1.0), outputscale_prior_kind="uniform",
                        outputscale_prior=(0.1, 10.0), max_data=0)  # fmt: skip
    searcher = GIBOSearcher(np.full(2, 0.5), config)
    searcher.x, searcher.y = x, y
    searcher.lengthscales, searcher.outputscale = np.array([1.0, 1.0]), 10.0  # At the bounds.
    searcher._fit()
    np.testing.assert_allclose(searcher.lengthscales, truth, rtol=0.3)
    assert searcher.outputscale < 5.0


def test_the_defaults_are_the_published_fitting():
    from saferl_tf.search.methods import make_searcher
    from saferl_tf.search.objectives import make_objective, synthetic_lengthscale

    config = GIBOConfig()
    assert (config.fit_when, config.epsilon, config.noise_variance, config.standardize) == (
        "window_full", None, 0.01, False)  # fmt: skip
    # "auto": the synthetic experiment's prior on its functions, the RL prior elsewhere.
    synthetic = make_searcher("gibo", make_objective("synthetic:8:0", cache_dir=None), seed=0)
    assert synthetic.prior == "paper_synthetic"
    np.testing.assert_allclose(synthetic.lengthscales, synthetic_lengthscale(8))
    assert (synthetic.outputscale_prior_kind, synthetic.outputscale_prior) == (
        "uniform",
        (0.1, 5.0),
    )
    assert synthetic.outputscale == pytest.approx(2.55)
    plain = GIBOSearcher(np.zeros(3))
    assert plain.prior == "bounds" and plain.lengthscale_bounds == (0.01, 0.3)
    assert (plain.outputscale_prior_kind, plain.outputscale_prior, plain.outputscale) == (
        "normal", (2.0, 1.0), 2.0)  # fmt: skip
    np.testing.assert_allclose(plain.lengthscales, 0.155)  # The prior's midpoint, as published.
    with pytest.raises(Exception, match="lengthscale_bounds must be 0 < low < high"):
        GIBOSearcher(np.zeros(3), GIBOConfig(lengthscale_bounds=(0.3, 0.1)))
