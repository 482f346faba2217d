"""launchers/search.py, resumable search runs, and GIBO's comparison plot and table."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import numpy as np
import pytest
from conftest import ROOT

from saferl_tf.analysis import search as search_analysis
from saferl_tf.errors import ConfigError, NonFiniteError, UnknownNameError
from saferl_tf.search import experiment
from saferl_tf.search.experiment import SearchSettings, run_search
from saferl_tf.search.objectives import (
    GPSampleFunction,
    cached_gp_sample_function,
    make_objective,
    parse_objective_spec,
    synthetic_lengthscale,
)


def _rows(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _settings(tmp_path, **changes) -> SearchSettings:
    values = dict(method="ars", objective="synthetic:2:0", budget=12,
                  results_dir=str(tmp_path / "runs"), functions_dir=str(tmp_path / "functions"),
                  progress=False)  # fmt: skip
    values.update(changes)
    return SearchSettings(**values)


@pytest.mark.parametrize(
    "spec, error, words",
    [
        ("synthetic:4", ConfigError, "synthetic:D:INDEX"),
        ("synthetic:x:1", ConfigError, "synthetic:D:INDEX"),
        ("synthetic:0:1", ConfigError, "D must be >= 1"),
        ("gym_CartPol-v1", UnknownNameError, "gym_CartPole-v1"),
    ],
)
def test_bad_objective_specs_are_one_line_errors(spec, error, words):
    with pytest.raises(error, match=words) as raised:
        parse_objective_spec(spec)
    assert "\n" not in str(raised.value)


def test_objective_specs():
    assert parse_objective_spec("synthetic:8:3") == ("synthetic", (8, 3))
    assert parse_objective_spec("lqr") == ("env", ("saferl_LQR-v0",))
    lqr = make_objective("lqr")
    assert lqr.dimension == 9 and lqr.bounds is None and np.all(lqr.initial == 0)
    counting = make_objective("saferl_TestCounting-v0", policy="mlp", hidden=(3,))
    assert counting.dimension == counting.policy.size and counting.initial.any()


def test_mujoco_policy_sizes_match_the_paper():
    # GIBO's linear policies: Swimmer 8 x 2 = 16; Hopper 11 x 3 + 3 offsets = 36.
    assert make_objective("gym_Swimmer-v4").dimension == 16
    hopper = make_objective("gym_Hopper-v4", bias=True, normalize=True)
    assert hopper.dimension == 36 and np.isfinite(hopper(hopper.initial))
    assert hopper.state()["count"] > 0  # Observation statistics were updated.


def test_synthetic_maximum_is_a_maximum_and_is_cached(tmp_path):
    function = cached_gp_sample_function(2, 0, tmp_path)
    top, argmax = function.max_value, function.argmax
    grid = np.stack(np.meshgrid(*[np.linspace(0, 1, 201)] * 2), -1).reshape(-1, 2)
    values = function(grid)
    assert values.max() <= top + 1e-9 and top - values.max() < 0.01 * np.ptp(values)
    assert function(argmax)[0] == pytest.approx(top)
    # The analytic gradient used by the maximizer, against central differences.
    point, step = np.array([0.3, 0.7]), 1e-6
    numeric = [(function(point + step * e)[0] - function(point - step * e)[0]) / (2 * step)
               for e in np.eye(2)]  # fmt: skip
    np.testing.assert_allclose(function.gradient(point), numeric, rtol=1e-5, atol=1e-8)
    loaded = GPSampleFunction.load(tmp_path / "D2-0.npz")
    assert loaded.max_value == top and np.array_equal(loaded.argmax, argmax)


@pytest.mark.parametrize("method", ["ars", "gibo", "cmaes"])
def test_an_interrupted_search_resumes_to_the_same_evaluations(tmp_path, method):
    import tensorflow as tf

    whole = run_search(_settings(tmp_path, method=method, run_dir=str(tmp_path / "whole")))
    run_search(_settings(tmp_path, method=method, budget=5, run_dir=str(tmp_path / "split")))
    assert not list((tmp_path / "split").glob("*.pkl"))  # JSON and .npz only.
    # A resume runs in a new process: global seeds must not matter.
    np.random.seed(1)  # noqa: NPY002
    tf.random.set_seed(1)
    resumed = run_search(_settings(tmp_path, method=method, run_dir=str(tmp_path / "split")))
    rows_whole, rows_split = _rows(tmp_path / "whole"), _rows(tmp_path / "split")
    assert [r["step"] for r in rows_split] == list(range(1, 13))
    # The same noisy values, so the same points: the searcher and the
    # objective's noise both continue where they stopped.
    assert [r["search/value"] for r in rows_split] == [r["search/value"] for r in rows_whole]
    summary = json.loads((tmp_path / "split" / "summary.json").read_text())
    assert summary["best_parameters"] == whole["best_parameters"]
    assert resumed["best_value"] == whole["best_value"]
    best = [r["search/best_so_far"] for r in rows_whole]
    assert best == list(np.maximum.accumulate([r["search/value"] for r in rows_whole]))
    regret = [r["search/normalized_regret"] for r in rows_whole]
    assert min(regret) >= -1e-9  # Nothing beats the computed maximum.
    assert all(a >= b for a, b in zip(regret, regret[1:]))  # The best point only improves.


def test_regret_is_normalized_by_the_start_point(tmp_path):
    run_search(_settings(tmp_path, budget=1, noise_std=0.0, run_dir=str(tmp_path / "one")))
    (row,) = _rows(tmp_path / "one")
    # ARS's first point is theta0 + noise * delta, not theta0: regret near, not at, 1.
    function = cached_gp_sample_function(2, 0, tmp_path / "functions")
    start = function(np.full(2, 0.5))[0]
    expected = (function.max_value - row["search/true_value"]) / (function.max_value - start)
    assert row["search/normalized_regret"] == pytest.approx(expected)
    assert row["search/value"] == pytest.approx(row["search/true_value"])  # No noise.


def test_environment_objectives_log_the_episode_cost(tmp_path):
    summary = run_search(_settings(tmp_path, objective="saferl_TestCounting-v0", budget=3,
                                   run_dir=str(tmp_path / "env")))  # fmt: skip
    rows = _rows(tmp_path / "env")
    assert [r["search/episode_cost"] for r in rows] == [3.0, 3.0, 3.0]
    assert [r["search/value"] for r in rows] == [10.0, 10.0, 10.0]
    size = make_objective("saferl_TestCounting-v0").dimension
    assert summary["evaluations"] == 3 and len(summary["best_parameters"]) == size
    assert list((tmp_path / "env").glob("events.out.tfevents.*"))


def test_a_different_search_in_the_same_folder_is_refused(tmp_path):
    run_search(_settings(tmp_path, budget=2, run_dir=str(tmp_path / "run")))
    with pytest.raises(ConfigError, match="different settings \\(method"):
        run_search(_settings(tmp_path, method="gibo", budget=2, run_dir=str(tmp_path / "run")))


def test_bo_needs_a_box_and_non_finite_values_stop_the_run(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="--set=low=-1,high=1"):
        run_search(_settings(tmp_path, method="bo", objective="lqr", budget=1))

    real = experiment.make_objective

    def broken(*args, **kwargs):
        objective = real(*args, **kwargs)
        objective.__class__ = type("Broken", (type(objective),),
                                   {"__call__": lambda self, p: float("nan")})  # fmt: skip
        return objective

    monkeypatch.setattr(experiment, "make_objective", broken)
    with pytest.raises(NonFiniteError, match="returned nan at evaluation 1"):
        run_search(_settings(tmp_path, budget=2, run_dir=str(tmp_path / "nan")))


def _launch(python, env, *args, **kwargs):
    return subprocess.run([python, str(ROOT / "launchers" / "search.py"), *args],
                          capture_output=True, text=True, env=env, **kwargs)  # fmt: skip


@pytest.mark.parametrize(
    "args, words",
    [
        (["--method=gib"], "unknown search method 'gib' (did you mean gibo?)"),
        (["--set=delta"], "is not KEY=VALUE"),
        (["--set=deltaa=0.1"], "unknown config key 'deltaa'"),
        (["--objective=synthetic:4"], "synthetic:D:INDEX"),
        (["--budget=0"], "--budget must be a positive integer"),
    ],
)
def test_launcher_bad_input_is_one_line_exit_2(python, subprocess_env, tmp_path, args, words):
    result = _launch(python, subprocess_env, f"--results_dir={tmp_path}", *args)
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and words in errors[0] and "Traceback" not in result.stderr


def test_launcher_sigterm_stops_after_an_evaluation_and_the_run_resumes(
    python, subprocess_env, tmp_path
):
    args = ["--method=gibo", "--objective=synthetic:2:1", f"--results_dir={tmp_path / 'runs'}",
            f"--functions_dir={tmp_path / 'functions'}", "--noprogress"]  # fmt: skip
    process = subprocess.Popen(
        [python, str(ROOT / "launchers" / "search.py"), "--budget=100000", *args],
        stderr=subprocess.PIPE, text=True, env=subprocess_env,
    )  # fmt: skip
    run_dir = tmp_path / "runs" / "gibo" / "synthetic-D2-f1" / "0"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (run_dir / "search_state.json").exists():
        time.sleep(0.5)
    time.sleep(2)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM, stderr
    done = len(_rows(run_dir))
    assert done >= 1 and "Run the same command again to resume" in stderr
    result = _launch(python, subprocess_env, f"--budget={done + 3}", *args, timeout=300)
    assert result.returncode == 0, result.stderr
    assert [r["step"] for r in _rows(run_dir)] == list(range(1, done + 4))
    assert json.loads(result.stdout)["evaluations"] == done + 3


def test_plot_search_groups_functions_and_averages_runs(python, subprocess_env, tmp_path):
    root = tmp_path / "runs"
    for method, finals in (("gibo", [0.1, 0.3]), ("ars", [0.5, 0.9])):
        for index, final in enumerate(finals):
            run_dir = root / method / f"synthetic-D4-f{index}" / "0"
            run_dir.mkdir(parents=True)
            rows = [
                {"step": 1, "search/normalized_regret": 1.0, "search/best_so_far": 0.0},
                {"step": 10, "search/normalized_regret": final, "search/best_so_far": 1.0},
            ]
            (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    rows = {r.method: r for r in search_analysis.final_values(root)}
    assert rows["gibo"].mean == pytest.approx(0.2) and rows["gibo"].runs == 2
    assert rows["ars"].std == pytest.approx(0.2) and rows["ars"].evaluations == 10
    figure = search_analysis.plot_search(root)["synthetic-D4"]
    lines = {line.get_label(): line for line in figure.axes[0].get_lines()}
    np.testing.assert_allclose(lines["gibo"].get_ydata()[[0, -1]], [1.0, 0.2])
    assert figure.axes[0].get_yscale() == "log" and len(figure.axes) == 1
    result = subprocess.run(
        [python, str(ROOT / "tools" / "plot_search.py"), f"--data_path={root}"],
        capture_output=True, text=True, env=subprocess_env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (root / "synthetic-D4.png").exists() and "| synthetic-D4 | gibo | 2 |" in result.stdout
    empty = subprocess.run(
        [python, str(ROOT / "tools" / "plot_search.py"), f"--data_path={tmp_path / 'none'}"],
        capture_output=True, text=True, env=subprocess_env,
    )  # fmt: skip
    assert empty.returncode == 2 and empty.stderr.count("error:") == 1


def test_set_takes_pairs_and_single_values():
    from saferl_tf.cli.search import parse_set
    from saferl_tf.errors import ConfigError
    from saferl_tf.search.methods import method_config

    items = ["delta=0.1", "lengthscale_bounds=0.01", "0.5", "epsilon=none"]
    values = parse_set(items)
    assert values == {"delta": "0.1", "lengthscale_bounds": "0.01,0.5", "epsilon": "none"}
    config = method_config("gibo", values)
    assert config.lengthscale_bounds == (0.01, 0.5) and config.epsilon is None
    with pytest.raises(ConfigError, match="is not KEY=VALUE"):
        parse_set(["0.5", "delta=0.1"])


def test_presets_scale_with_the_dimension_and_set_overrides_them(tmp_path):
    from saferl_tf.search.methods import method_config
    from saferl_tf.search.presets import preset_values

    length = {d: synthetic_lengthscale(d) for d in (4, 16)}
    ars = {d: method_config("ars", preset_values("ars", "paper_synthetic", f"synthetic:{d}:0"))
           for d in (4, 16)}  # fmt: skip
    assert (ars[4].directions, ars[16].directions) == (1, 3)
    assert ars[16].noise == pytest.approx(0.1 * length[16]) and ars[16].std_ddof == 1
    cmaes = method_config("cmaes", preset_values("cmaes", "paper_synthetic", "synthetic:4:1"))
    assert cmaes.sigma == pytest.approx(0.15 * length[4]) and not cmaes.bounded
    oracle = method_config("gibo", preset_values("gibo", "oracle", "synthetic:16:0", 0.2))
    assert not oracle.fit_hyperparameters and oracle.lengthscale == pytest.approx(length[16])
    assert oracle.noise_variance == pytest.approx(0.04) and oracle.outputscale == 1.0
    with pytest.raises(ConfigError, match="needs a synthetic:D:INDEX objective"):
        preset_values("gibo", "oracle", "lqr")
    with pytest.raises(UnknownNameError, match="did you mean paper_synthetic"):
        preset_values("ars", "paper_synthetc", "synthetic:4:0")
    # --set wins over the preset; the run folder names the preset.
    settings = _settings(tmp_path, method="cmaes", preset="paper_synthetic_map",
                         values={"sigma": "0.3"}, budget=3)  # fmt: skip
    summary = run_search(settings)
    run_dir = tmp_path / "runs" / "cmaes-paper_synthetic_map" / "synthetic-D2-f0" / "0"
    record = json.loads((run_dir / "config.json").read_text())
    assert summary["evaluations"] == 3 and record["searcher_config"]["sigma"] == 0.3
    assert record["searcher_config"]["bounded"] is False


def test_iterate_curves_plot_the_current_parameters(tmp_path):
    """--iterate_every's measurements become the curves and the table with
    iterates=True: the return of the current parameters on environments, the
    iterate's regret on synthetic functions (log scale)."""
    root = tmp_path / "runs"
    for method in ("ars", "cmaes"):
        run_search(_settings(tmp_path, method=method, budget=8, iterate_every=4))
        run_search(_settings(tmp_path, method=method, objective="saferl_TestCounting-v0",
                             budget=4, iterate_every=2))  # fmt: skip
    rows = {(r.group, r.method): r for r in search_analysis.final_values(root, iterates=True)}
    assert rows[("synthetic-D2", "ars")].evaluations == 8
    assert rows[("saferl_TestCounting-v0", "cmaes")].evaluations == 4
    saved = json.loads(
        (root / "ars" / "synthetic-D2-f0" / "0" / "metrics.jsonl").read_text().splitlines()[-1]
    )
    assert rows[("synthetic-D2", "ars")].mean == pytest.approx(saved["search/iterate_regret"])
    figures = search_analysis.plot_search(root, iterates=True)
    assert figures["synthetic-D2"].axes[0].get_yscale() == "log"
    lines = figures["saferl_TestCounting-v0"].axes[0].get_lines()
    assert {line.get_label() for line in lines} >= {"ars", "cmaes"}
    assert len(figures["saferl_TestCounting-v0"].axes) == 2  # The task's cost beside it.
    # A task whose costs are all zero (MuJoCo) gets no empty cost panel.
    for path in root.glob("*/saferl_TestCounting-v0/*/metrics.jsonl"):
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        cost = search_analysis.COST
        rows = [{**row, **({cost: 0.0} if cost in row else {})} for row in rows]
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    figures = search_analysis.plot_search(root, iterates=True)
    assert len(figures["saferl_TestCounting-v0"].axes) == 1


def test_a_normalized_policy_search_resumes_with_its_re_expressed_data(tmp_path):
    """GIBO on a normalized linear policy with offsets (the published Hopper
    setting, small): stopped after 7 evaluations and continued to 12, the same
    values as the whole run and the same iterate measurements (one more, after
    the 7th, the end of the first part); the raw points are saved."""
    settings = dict(
        method="gibo", objective="gym_Hopper-v4", bias=True, normalize=True, reward_shift=-1.0,
        reward_scale=1e-3, iterate_every=5, values={"max_queries": "4", "max_data": "10"},
    )  # fmt: skip
    run_search(_settings(tmp_path, budget=12, run_dir=str(tmp_path / "whole"), **settings))
    run_search(_settings(tmp_path, budget=7, run_dir=str(tmp_path / "split"), **settings))
    from saferl_tf.search import state as state_io

    saved = state_io.load(tmp_path / "split")
    assert saved["searcher"]["raw_x"].shape == (7, 36)
    run_search(_settings(tmp_path, budget=12, run_dir=str(tmp_path / "split"), **settings))
    keys = ("search/value", "search/iterate_return")
    whole, split = _rows(tmp_path / "whole"), _rows(tmp_path / "split")
    assert [r["search/value"] for r in split] == [r["search/value"] for r in whole]
    measured = {r["step"]: r[keys[1]] for r in whole if keys[1] in r}
    assert list(measured) == [5, 10, 12]
    split_measured = {r["step"]: r[keys[1]] for r in split if keys[1] in r}
    assert list(split_measured) == [5, 7, 10, 12]
    assert {step: split_measured[step] for step in measured} == measured
