"""Environment objectives for policy search: reward scaling as the published
GIBO code runs it, the measurement of iterates, the running observation
statistics, and re-expressing a normalized linear policy's parameters."""

from __future__ import annotations

import json

import numpy as np
import pytest

from saferl_tf.search.experiment import SearchSettings, run_search
from saferl_tf.search.gibo import GIBOConfig, GIBOSearcher
from saferl_tf.search.objectives import make_objective


def test_reward_shift_and_scale_as_the_published_hopper_runs():
    plain = make_objective("gym_Hopper-v4", bias=True, seed=3)
    shifted = make_objective("gym_Hopper-v4", bias=True, seed=3, reward_shift=-1.0,
                             reward_scale=1e-3)  # fmt: skip
    parameters = np.random.default_rng(0).normal(0, 0.1, plain.dimension)
    raw = plain(parameters)
    value = shifted(parameters)
    assert shifted.info()["episode_return"] == pytest.approx(raw)
    # Per step (r - 1) / 1000: the return less one per step, scaled. The
    # episode's length is the same (the same seed and policy).
    length = raw - 1000 * value
    assert length == pytest.approx(round(length), abs=1e-6) and 1 <= round(length) <= 1000


def test_running_statistics_match_numpy_in_float64():
    objective = make_objective("gym_Hopper-v4", bias=True, normalize=True, seed=1)
    rng = np.random.default_rng(2)
    batches = [rng.normal(3.0, 2.0, (n, 11)) for n in (1, 7, 40)]
    for batch in batches:
        objective._update_statistics(batch)
    everything = np.concatenate(batches)
    state = objective.state()
    assert state["count"] == len(everything)
    np.testing.assert_allclose(state["mean"], everything.mean(0), rtol=1e-12)
    np.testing.assert_allclose(state["m2"] / (len(everything) - 1), everything.var(0, ddof=1),
                               rtol=1e-10)  # fmt: skip


def test_a_normalized_linear_policy_keeps_its_actions_when_re_expressed():
    objective = make_objective("gym_Hopper-v4", bias=True, normalize=True, seed=4)
    assert objective.reexpresses_parameters
    assert not make_objective("gym_Hopper-v4", normalize=True).reexpresses_parameters
    rng = np.random.default_rng(5)
    objective._update_statistics(rng.normal(1.0, 3.0, (50, 11)))
    parameters = rng.normal(0, 0.3, (4, objective.dimension))
    objective(parameters[0])  # Evaluated under the statistics of 50 observations...
    before = objective._evaluated_under
    raw = objective.to_raw(parameters)
    assert not np.allclose(before[0], objective._statistics()[0])  # ...which then moved.
    now = objective.from_raw(raw)
    observations = rng.normal(0, 2.0, (6, 11))
    for old, new in zip(parameters, now):
        weights, bias = objective.policy.split(old)
        new_weights, new_bias = objective.policy.split(new)
        then = ((observations - before[0]) / before[1]) @ weights + bias
        mean, std = objective._statistics()
        np.testing.assert_allclose(((observations - mean) / std) @ new_weights + new_bias, then,
                                   rtol=1e-9, atol=1e-12)  # fmt: skip
    # Through the searcher: GIBO keeps raw points and its data are them, as of now.
    start = parameters[1]
    searcher = GIBOSearcher(start, GIBOConfig(epsilon=None), coordinates=objective)
    for _ in range(3):
        point = searcher.ask()
        searcher.tell(point, objective(point))
    np.testing.assert_allclose(searcher.x, objective.from_raw(searcher.raw_x))
    assert not np.allclose(searcher.x[0], start)  # The first centre, re-expressed since.


def test_iterates_are_measured_apart_from_the_budget(tmp_path):
    settings = SearchSettings(method="ars", objective="gym_Swimmer-v4", budget=6, seed=0,
                              values={"directions": "1"}, reward_scale=1 / 350,
                              iterate_every=4, run_dir=str(tmp_path / "run"),
                              progress=False)  # fmt: skip
    summary = run_search(settings)
    rows = [
        json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    ]
    measured = [row["step"] for row in rows if "search/iterate_return" in row]
    assert summary["evaluations"] == 6 and measured == [4, 6]  # Every 4, and after the last.
    for row in rows:  # The searcher saw the scaled return; the raw one is logged beside it.
        assert row["search/value"] == pytest.approx(row["search/episode_return"] / 350)
