"""saferl_tf.analysis.results and tools/plot.py on a small synthetic results tree.

The expected arrays are written out by hand: every run is a straight line between
its logged points, so interpolated values can be read off, and a run of different
length leaves NaN (absent) where it has no data.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import scipy.stats

from saferl_tf.analysis import results, stats

ROOT = Path(__file__).resolve().parent.parent
PLOT = str(ROOT / "tools" / "plot.py")
NAN = np.nan
ENV_A, ENV_B = "EnvA-v0", "EnvB-v0"

# alpha on EnvA: three seeds of different lengths and offsets (seed 2 starts at 500).
ALPHA_A = {
    "0": ([0, 1000, 2000, 3000, 4000], [0, 1, 2, 3, 4], [10, 20, 30, 40, 50]),
    "1": ([0, 1000, 2000], [2, 3, 6], [30, 20, 10]),
    "2": ([500, 1500, 2500, 3500], [1, 2, 3, 4], [15, 25, 35, 45]),
}
GRID_A = [0, 500, 1000, 1500, 2000, 2500, 3000, 3500, 4000]
# alpha's runs at GRID_A; NaN outside a run's own first..last step.
ALPHA_A_RETURN = [
    [0, 0.5, 1, 1.5, 2, 2.5, 3, 3.5, 4],
    [2, 2.5, 3, 4.5, 6, NAN, NAN, NAN, NAN],
    [NAN, 1, 1.5, 2, 2.5, 3, 3.5, 4, NAN],
]
ALPHA_A_COST = [
    [10, 15, 20, 25, 30, 35, 40, 45, 50],
    [30, 25, 20, 15, 10, NAN, NAN, NAN, NAN],
    [NAN, 15, 20, 25, 30, 35, 40, 45, NAN],
]
# beta on EnvA: seeds 0 and 1 with eval metrics; seed 2 only has train metrics (fallback).
BETA_A = {
    "0": ([0, 2000, 4000], [5, 7, 9], [0, 5, 10]),
    "1": ([0, 2000, 4000], [7, 9, 11], [2, 3, 4]),
}
BETA_A_TRAIN_2 = ([1000, 2000], [4, 6], [8, 12])
GRID_BETA = [0, 1000, 2000, 4000]
BETA_A_RETURN = [[5, 6, 7, 9], [7, 8, 9, 11], [NAN, 4, 6, NAN]]
BETA_A_COST = [[0, 2.5, 5, 10], [2, 2.5, 3, 4], [NAN, 8, 12, NAN]]
# EnvB: alpha's only run has TensorBoard events and no metrics.jsonl. Values are exact in
# float32 (TensorBoard stores float32); the NaN cost at step 1500 is left out.
EVENTS_B = ([0, 1000, 1500, 2000], [0.5, 1.25, 2.0, -3.75], [4.0, 8.5, NAN, 1.0])
BETA_B = ([0, 1000], [1, 2], [3, 4])


def write_jsonl(folder: Path, rows: list[dict]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))


def write_config(folder: Path, agent: str, cost_limit: float, safety: bool = True) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    config = {"agent": agent, "env": folder.parent.name, "run": {"seed": int(folder.name)}}
    config["agent_config"] = {"cost_limit": cost_limit, "safety": safety}
    (folder / "config.json").write_text(json.dumps(config))


def logger_value(value: float):
    return value if np.isfinite(value) else str(float(value))  # As the Logger writes them.


def metric_rows(prefix: str, steps, returns, costs) -> list[dict]:
    """Rows as the training loop logs them: episode metrics, with speed rows between."""
    rows = []
    for step, ret, cost in zip(steps, returns, costs):
        rows.append({"step": step, "train/steps_per_second": 180.0})
        rows.append(
            {
                "step": step,
                f"{prefix}/episode_return": logger_value(ret),
                f"{prefix}/episode_cost": logger_value(cost),
                f"{prefix}/episode_length": 1000.0,
            }
        )
    return rows


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("results")
    for seed, run in ALPHA_A.items():
        rows = metric_rows("eval", *run)
        if seed == "2":  # A non-finite return between two points: left out, line stays straight.
            rows.append({"step": 3000, "eval/episode_return": "nan", "eval/episode_cost": 40.0})
            rows.sort(key=lambda row: row["step"])
        write_jsonl(root / "alpha" / ENV_A / seed, rows)
        write_config(root / "alpha" / ENV_A / seed, "alpha", 25.0)
    write_config(root / "alpha" / ENV_A / "3", "alpha", 25.0)  # Started, nothing logged yet.
    (root / "alpha" / ENV_A / "3" / "metrics.jsonl").write_text("")
    for seed, run in BETA_A.items():
        write_jsonl(root / "beta" / ENV_A / seed, metric_rows("eval", *run))
        write_config(root / "beta" / ENV_A / seed, "beta", 25.0)
    write_jsonl(root / "beta" / ENV_A / "2", metric_rows("train", *BETA_A_TRAIN_2))
    write_jsonl(root / "beta" / ENV_A / "3", [{"step": 1000, "train/steps_per_second": 90.0}])
    (root / "gamma" / ENV_A / "0").mkdir(parents=True)  # An empty experiment folder.
    write_jsonl(root / "beta" / ENV_B / "0", metric_rows("eval", *BETA_B))
    write_events(root / "alpha" / ENV_B / "0", *EVENTS_B)
    return root


def write_events(folder: Path, steps, returns, costs) -> None:
    import tensorflow as tf

    folder.mkdir(parents=True, exist_ok=True)
    writer = tf.summary.create_file_writer(str(folder))
    with writer.as_default():
        for step, ret, cost in zip(steps, returns, costs):
            tf.summary.scalar("train/steps_per_second", 180.0, step=step)
            tf.summary.scalar("eval/episode_return", ret, step=step)
            tf.summary.scalar("eval/episode_cost", cost, step=step)
        # A video strip shares the file; it is not a curve.
        tf.summary.image("eval/video", np.zeros((2, 4, 4, 3), np.uint8), step=steps[-1])
    writer.close()


def expected(table, spread="std"):
    """Mean, low, high and count of runs [N, G] with NaN where a run is absent."""
    table = np.array(table, np.float64)
    mean = np.nanmean(table, axis=0)
    if spread == "std":
        std = np.nanstd(table, axis=0)
        return mean, mean - std, mean + std, np.sum(~np.isnan(table), axis=0)
    return mean, np.nanmin(table, 0), np.nanmax(table, 0), np.sum(~np.isnan(table), axis=0)


def load(tree):
    warnings: list[str] = []
    curves = results.collect_curves(
        results.find_experiments(tree, warn=warnings.append),
        {"eval/episode_return": "train/episode_return", "eval/episode_cost": "train/episode_cost"},
        warn=warnings.append,
    )
    return curves["eval/episode_return"], curves["eval/episode_cost"], warnings


@pytest.mark.parametrize("spread", ["std", "minmax"])
def test_mean_and_spread_over_runs_of_different_lengths(tree, spread):
    returns, costs, _ = load(tree)
    alpha = returns[ENV_A]["alpha"]
    assert [curve.experiment for curve in alpha] == ["0", "1", "2"]
    for table, curves in ((ALPHA_A_RETURN, alpha), (ALPHA_A_COST, costs[ENV_A]["alpha"])):
        grid, mean, low, high, count = results.aggregate(curves, spread=spread)
        np.testing.assert_allclose(grid, GRID_A)
        want_mean, want_low, want_high, want_count = expected(table, spread)
        np.testing.assert_allclose(mean, want_mean)
        np.testing.assert_allclose(low, want_low)
        np.testing.assert_allclose(high, want_high)
        np.testing.assert_array_equal(count, want_count)
    # Only seed 0 reaches step 4000 and only seeds 0 and 1 start at 0: no extrapolation.
    grid, mean, low, high, count = results.aggregate(alpha, spread=spread)
    np.testing.assert_array_equal(count, [2, 3, 3, 3, 3, 2, 2, 2, 1])
    assert mean[-1] == low[-1] == high[-1] == 4.0
    assert mean[0] == 1.0


def test_a_grid_outside_every_run_is_nan_not_extrapolated(tree):
    returns, _, _ = load(tree)
    grid, mean, low, high, count = results.aggregate(returns[ENV_A]["alpha"], [-500, 250, 5000])
    np.testing.assert_array_equal(count, [0, 2, 0])
    np.testing.assert_allclose(mean, [NAN, 1.25, NAN])  # Seeds 0 and 1: 0.25 and 2.25.
    assert np.isnan(low[[0, 2]]).all() and np.isnan(high[[0, 2]]).all()


def test_run_without_eval_metrics_falls_back_to_train(tree):
    returns, costs, warnings = load(tree)
    beta = returns[ENV_A]["beta"]
    assert [(curve.experiment, curve.metric) for curve in beta] == [
        ("0", "eval/episode_return"),
        ("1", "eval/episode_return"),
        ("2", "train/episode_return"),
    ]
    for table, curves in ((BETA_A_RETURN, beta), (BETA_A_COST, costs[ENV_A]["beta"])):
        grid, mean, low, high, count = results.aggregate(curves)
        np.testing.assert_allclose(grid, GRID_BETA)
        want_mean, want_low, want_high, want_count = expected(table)
        np.testing.assert_allclose(mean, want_mean)
        np.testing.assert_allclose(low, want_low)
        np.testing.assert_allclose(high, want_high)
        np.testing.assert_array_equal(count, want_count)
    fallback = [w for w in warnings if str(Path("beta", ENV_A, "2")) in w]
    assert len(fallback) == 1 and "using train/episode_return, train/episode_cost" in fallback[0]


def test_broken_runs_are_skipped_with_one_warning_each(tree):
    returns, costs, warnings = load(tree)
    by_run = {}
    for warning in warnings:
        run = Path(warning.split(":")[0])
        by_run.setdefault(str(run.relative_to(tree)), []).append(warning)
    assert set(by_run) == {
        str(Path("alpha", ENV_A, "2")),  # Non-finite value left out.
        str(Path("alpha", ENV_A, "3")),  # Nothing logged.
        str(Path("alpha", ENV_B, "0")),  # Non-finite value left out.
        str(Path("beta", ENV_A, "2")),  # Train metrics instead of eval.
        str(Path("beta", ENV_A, "3")),  # No episode metrics at all.
        str(Path("gamma", ENV_A, "0")),  # Empty folder.
    }, warnings
    assert all(len(lines) == 1 for lines in by_run.values()), warnings
    assert "1 non-finite eval/episode_return" in by_run[str(Path("alpha", ENV_A, "2"))][0]
    assert "nothing logged; skipped" in by_run[str(Path("alpha", ENV_A, "3"))][0]
    assert (
        "no eval/episode_return (nor train/episode_return)"
        in (by_run[str(Path("beta", ENV_A, "3"))][0])
    )
    assert "no metrics.jsonl and no TensorBoard events" in by_run[str(Path("gamma", ENV_A, "0"))][0]
    assert "gamma" not in returns[ENV_A] and "gamma" not in costs[ENV_A]
    assert len(returns[ENV_A]["alpha"]) == 3 and len(returns[ENV_A]["beta"]) == 3


def test_tensorboard_fallback_gives_the_same_curve_as_the_metrics_file(tree, tmp_path):
    twin = tmp_path / "twin"
    write_jsonl(twin / "alpha" / ENV_B / "0", metric_rows("eval", *EVENTS_B))
    for metric in ("eval/episode_return", "eval/episode_cost"):
        warnings_events, warnings_file = [], []
        from_events = results.load_curves(tree, metric, warn=warnings_events.append)
        from_file = results.load_curves(twin, metric, warn=warnings_file.append)
        (events_curve,) = from_events[ENV_B]["alpha"]
        (file_curve,) = from_file[ENV_B]["alpha"]
        np.testing.assert_array_equal(events_curve.steps, file_curve.steps)
        np.testing.assert_allclose(events_curve.values, file_curve.values, rtol=1e-6)
        assert events_curve.metric == file_curve.metric == metric
    # The NaN cost is left out either way, with the same warning.
    np.testing.assert_array_equal(file_curve.steps, [0, 1000, 2000])
    np.testing.assert_allclose(file_curve.values, [4.0, 8.5, 1.0])
    assert [w.split(": ", 1)[1] for w in warnings_events if ENV_B in w] == [
        w.split(": ", 1)[1] for w in warnings_file
    ]
    scalars = results.read_scalars(tree / "alpha" / ENV_B / "0")
    assert "eval/video" not in scalars
    np.testing.assert_array_equal(scalars["train/steps_per_second"][0], EVENTS_B[0])


def test_read_scalars_keeps_the_last_value_of_a_repeated_step_and_reads_nonfinite(tmp_path):
    lines = [
        {"step": 10, "train/episode_cost": 1.0},
        {"step": 20, "train/episode_cost": "inf", "train/note": "text"},
        {"step": 10, "train/episode_cost": 2.0},  # Logged again after a resume.
    ]
    (tmp_path / "metrics.jsonl").write_text(
        "".join(json.dumps(row) + "\n" for row in lines) + '{"step": 30, "train/ep'
    )
    warnings = []
    scalars = results.read_scalars(tmp_path, warn=warnings.append)
    assert set(scalars) == {"train/episode_cost"}
    np.testing.assert_array_equal(scalars["train/episode_cost"][0], [10, 20])
    np.testing.assert_array_equal(scalars["train/episode_cost"][1], [2.0, np.inf])
    assert len(warnings) == 1 and "1 unreadable line(s)" in warnings[0]


def test_moving_average_is_centred_and_shrinks_at_the_ends():
    np.testing.assert_allclose(results.moving_average([1, 2, 3, 4, 10], 3), [1.5, 2, 3, 17 / 3, 7])
    np.testing.assert_allclose(results.moving_average([1, 2, 3, 4], 1), [1, 2, 3, 4])
    np.testing.assert_allclose(results.moving_average([1, 2, 3, 4], 4), [2, 2.5, 3, 3.5])


def test_smoothing_happens_per_run_before_the_grid(tree):
    returns, _, _ = load(tree)
    aggregates = results.aggregate_algorithms(returns[ENV_A], smooth=3)
    # Runs smoothed over 3 points: seed 0 [.5, 1, 2, 3, 3.5], seed 1 [2.5, 11/3, 4.5],
    # seed 2 [1.5, 2, 3, 3.5]; then interpolated at GRID_A within each run.
    third = 11 / 3
    table = [
        [0.5, 0.75, 1, 1.5, 2, 2.5, 3, 3.25, 3.5],
        [2.5, (2.5 + third) / 2, third, (third + 4.5) / 2, 4.5, NAN, NAN, NAN, NAN],
        [NAN, 1.5, 1.75, 2, 2.5, 3, 3.25, 3.5, NAN],
    ]
    grid, mean, low, high, count = aggregates["alpha"]
    np.testing.assert_allclose(grid, GRID_A)
    want_mean, want_low, want_high, _ = expected(table)
    np.testing.assert_allclose(mean, want_mean)
    np.testing.assert_allclose(low, want_low)
    np.testing.assert_allclose(high, want_high)


def test_runs_without_safety_draw_no_cost_limit(tmp_path):
    # Every agent config carries a default cost limit; only runs that enforced it count.
    for algo, env, seed, limit, safety in [
        ("mbpo", "EnvPlain", 0, 25.0, False),
        ("mbpo", "EnvPlain", 1, 25.0, False),
        ("sac", "EnvPlain", 0, 10.0, False),
        ("sac", "EnvSafe", 0, 10.0, True),
        # Mixed: an unconstrained baseline beside a constrained run gets the constrained limit.
        ("sac", "EnvSafe", 1, 99.0, False),
    ]:
        write_config(tmp_path / algo / env / str(seed), algo, limit, safety)
    experiments = results.find_experiments(tmp_path, warn=lambda message: None)
    assert results.read_cost_limits(experiments) == {"EnvSafe": 10.0}


def test_figure_lines_are_the_aggregated_arrays(tree):
    returns, costs, _ = load(tree)
    experiments = results.find_experiments(tree, warn=lambda message: None)
    limits = results.read_cost_limits(experiments)
    assert limits == {ENV_A: 25.0}  # EnvB's runs have no config.json.
    figure = results.plot_environment(ENV_A, returns[ENV_A], costs[ENV_A], cost_limit=limits[ENV_A])
    return_axes, cost_axes = figure.axes
    tables = {
        (return_axes, "alpha"): (GRID_A, ALPHA_A_RETURN),
        (return_axes, "beta"): (GRID_BETA, BETA_A_RETURN),
        (cost_axes, "alpha"): (GRID_A, ALPHA_A_COST),
        (cost_axes, "beta"): (GRID_BETA, BETA_A_COST),
    }
    assert [line.get_label() for line in return_axes.get_lines()] == ["alpha", "beta"]
    assert [line.get_label() for line in cost_axes.get_lines()] == [
        "alpha",
        "beta",
        "cost limit 25",
    ]
    for (axes, algo), (grid, table) in tables.items():
        (line,) = [line for line in axes.get_lines() if line.get_label() == algo]
        want_mean, want_low, want_high, _ = expected(table)
        np.testing.assert_allclose(line.get_xdata(), grid)
        np.testing.assert_allclose(line.get_ydata(), want_mean)
        # fill_between comes before each line: the band of the i-th algo is collection i.
        band = axes.collections[[line.get_label() for line in axes.get_lines()].index(algo)]
        heights = band.get_paths()[0].vertices[:, 1]
        assert np.isclose(heights.min(), np.nanmin(want_low))
        assert np.isclose(heights.max(), np.nanmax(want_high))
    limit_line = cost_axes.get_lines()[-1]
    np.testing.assert_allclose(limit_line.get_ydata(), [25.0, 25.0])
    assert limit_line.get_linestyle() == "--"
    colors = {line.get_label(): line.get_color() for line in return_axes.get_lines()}
    assert colors == {
        line.get_label(): line.get_color() for line in cost_axes.get_lines()[:2]
    }  # The same algorithm has the same colour in both panels.


def run_plot(python, env, *args):
    return subprocess.run(
        [python, PLOT, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )


def test_plot_tool_writes_png_and_pdf_per_environment(python, subprocess_env, tree):
    result = run_plot(python, subprocess_env, "--data_path", str(tree), "--smooth", "2")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    written = [Path(line) for line in result.stdout.splitlines()]
    assert written == [
        tree / f"{env}.{suffix}" for env in (ENV_A, ENV_B) for suffix in ("png", "pdf")
    ]
    for path in written:
        header = path.read_bytes()[:8]
        assert header.startswith(b"\x89PNG" if path.suffix == ".png" else b"%PDF")
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    for run in ("alpha/EnvA-v0/3", "beta/EnvA-v0/2", "beta/EnvA-v0/3", "gamma/EnvA-v0/0"):
        assert sum(str(tree / run) in line for line in warnings) == 1, result.stderr
    assert not any(line.startswith("error:") for line in result.stderr.splitlines())


def test_plot_tool_train_metrics_into_output_dir(python, subprocess_env, tree, tmp_path):
    # Without the events-only run, so that the tool does not import TensorFlow (seconds).
    data = tmp_path / "results"
    shutil.copytree(tree, data, ignore=lambda folder, names: [n for n in names if "tfevents" in n])
    # Only beta/EnvA/2 has train episode metrics; every other run falls back to eval.
    result = run_plot(
        python,
        subprocess_env,
        f"--data_path={data}",
        f"--output_dir={tmp_path / 'plots'}",
        "--metrics=train",
        "--cost_limit=5",
        "--spread=minmax",
    )
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == [
        f"{env}.{suffix}" for env in (ENV_A, ENV_B) for suffix in ("pdf", "png")
    ]
    assert "using eval/episode_return, eval/episode_cost instead" in result.stderr
    assert f"{data / 'alpha' / ENV_B / '0'}: no metrics.jsonl and no TensorBoard events" in (
        result.stderr
    )


@pytest.mark.parametrize("case", ["nothing plottable", "no such folder", "run folder", "bad flag"])
def test_plot_tool_fails_in_one_line_with_exit_code_2(python, subprocess_env, tmp_path, case):
    root = tmp_path / "results"
    write_jsonl(root / "alpha" / ENV_A / "0", [{"step": 1000, "train/steps_per_second": 90.0}])
    (root / "beta" / ENV_A / "0").mkdir(parents=True)
    args = {
        "nothing plottable": [f"--data_path={root}"],
        "no such folder": [f"--data_path={tmp_path / 'missing'}"],
        "run folder": [f"--data_path={root / 'alpha' / ENV_A / '0'}"],
        "bad flag": [f"--data_path={root}", "--smooth=0"],
    }[case]
    result = run_plot(python, subprocess_env, *args, f"--output_dir={tmp_path / 'plots'}")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert result.stdout == ""
    assert not (tmp_path / "plots").exists()
    if case == "nothing plottable":
        assert "nothing to plot" in errors[0]
        warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
        assert len(warnings) == 2, result.stderr


def test_learning_table_sums_every_training_violation(python, subprocess_env, tmp_path):
    # cost_rate is cumulative cost over steps, so the total is rate x step at the last point,
    # even when episodes between logged points are not logged one by one.
    runs = {
        ("cem", "0"): ([200, 400], [-900.0, -300.0], [0.1, 0.05]),
        ("cem", "1"): ([200, 400], [-800.0, -500.0], [0.2, 0.15]),
        ("pessimistic", "0"): ([200, 400], [-1000.0, -400.0], [0.0, 0.01]),
    }
    for (algo, seed), (steps, returns, rates) in runs.items():
        rows = [{"step": s, "train/episode_return": r, "train/cost_rate": c}
                for s, r, c in zip(steps, returns, rates)]  # fmt: skip
        write_jsonl(tmp_path / algo / "EnvP-v0" / seed, rows)
    rows = results.summarize_learning(tmp_path)
    assert [(row.algo, row.runs) for row in rows] == [("cem", 2), ("pessimistic", 1)]
    cem, pessimistic = rows
    assert cem.final_return == pytest.approx(-400.0) and cem.final_return_std == pytest.approx(100)
    assert cem.total_cost == pytest.approx((20 + 60) / 2) and cem.total_cost_std == pytest.approx(
        20
    )
    assert pessimistic.total_cost == pytest.approx(4.0) and pessimistic.steps == 400
    table = results.learning_table(rows)
    assert "| EnvP-v0 | cem | 2 | 400 | -400.0 ± 100.0 | 40.0 ± 20.0 |" in table
    result = run_plot(python, subprocess_env, f"--data_path={tmp_path}", "--metrics=train",
                      "--table", f"--output_dir={tmp_path / 'plots'}")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "| EnvP-v0 | pessimistic | 1 | 400 | -400.0 | 4.0 |" in result.stdout


def test_learning_table_adds_iqm_and_bootstrap_interval_from_five_runs(
    python, subprocess_env, tmp_path
):
    # cem: 6 runs, final returns with an outlier; safe: 4 runs, below the IQM threshold.
    finals = {"cem": [-300.0, -250.0, -1200.0, -280.0, -320.0, -260.0], "safe": [-1, -2, -3, -4]}
    rates = {"cem": [0.1, 0.2, 0.05, 0.3, 0.15, 0.25], "safe": [0.0, 0.01, 0.0, 0.02]}
    for algo in finals:
        for seed, (final, rate) in enumerate(zip(finals[algo], rates[algo])):
            rows = [
                {"step": 100, "train/episode_return": -900.0, "train/cost_rate": 1.0},
                {"step": 400, "train/episode_return": final, "train/cost_rate": rate},
            ]
            write_jsonl(tmp_path / algo / "EnvP-v0" / str(seed), rows)
    rows = results.summarize_learning(tmp_path, resamples=2000, seed=3)
    cem, safe = rows
    assert (cem.algo, cem.runs, safe.algo, safe.runs) == ("cem", 6, "safe", 4)
    assert safe.final_return_iqm is None and safe.total_cost_iqm is None
    totals = np.array(rates["cem"]) * 400
    # The IQM drops one run from each end of 6: the outlier -1200 and the best -250.
    assert cem.final_return_iqm.estimate == pytest.approx((-300 - 280 - 320 - 260) / 4)
    assert cem.total_cost_iqm.estimate == pytest.approx(scipy.stats.trim_mean(totals, 0.25))
    assert cem.final_return == pytest.approx(np.mean(finals["cem"]))  # Mean ± std stays.
    for interval, scores in ((cem.final_return_iqm, finals["cem"]), (cem.total_cost_iqm, totals)):
        assert interval == stats.stratified_bootstrap([scores], resamples=2000, seed=3)
        assert interval.low <= interval.estimate <= interval.high
        assert interval.low >= min(scores) and interval.high <= max(scores)
    table = results.learning_table(rows, resamples=2000)
    ret, cost = cem.final_return_iqm, cem.total_cost_iqm
    assert (
        f"| {ret.estimate:.1f} [{ret.low:.1f}, {ret.high:.1f}] "
        f"| {cost.estimate:.1f} [{cost.low:.1f}, {cost.high:.1f}] |"
    ) in table
    assert "| EnvP-v0 | safe | 4 | 400 | -2.5 ± 1.1 | 3.0 ± 3.3 | — | — |" in table
    assert "(2,000 resamples), from 5 runs up" in table
    result = run_plot(python, subprocess_env, f"--data_path={tmp_path}", "--metrics=train",
                      "--table", "--bootstrap_resamples=2000",
                      f"--output_dir={tmp_path / 'plots'}")  # fmt: skip
    assert result.returncode == 0, result.stderr
    # The tool seeds the bootstrap (seed 0 by default): the same table every time.
    default_seed = results.summarize_learning(tmp_path, resamples=2000)
    assert results.learning_table(default_seed, resamples=2000) in result.stdout
    assert "| EnvP-v0 | cem | 6 | 400 | -435.0 ± 342.9 | 70.0 ± 34.2 |" in result.stdout


def test_extra_metrics_get_their_own_panel_from_the_logged_rows(tmp_path):
    """A metric logged beside the episodes (here a multiplier) is a third panel
    whose line is the mean over runs at the union of their steps."""
    for seed, scale in (("0", 1.0), ("1", 3.0)):
        rows = metric_rows("eval", [0, 1000, 2000], [1, 2, 3], [5, 4, 3])
        rows += [{"step": step, "lagrangian/multiplier": scale * step / 1000}
                 for step in (0, 1000, 2000)]  # fmt: skip
        write_jsonl(tmp_path / "lambda" / ENV_A / seed, rows)
    figures = results.plot_results(tmp_path, extra_metrics=["lagrangian/multiplier"])
    _, _, extra_axes = figures[ENV_A].axes
    (line,) = extra_axes.get_lines()
    np.testing.assert_allclose(line.get_xdata(), [0, 1000, 2000])
    np.testing.assert_allclose(line.get_ydata(), [0.0, 2.0, 4.0])  # Mean of x1 and x3.
    assert extra_axes.get_title() == "lagrangian/multiplier"
    # Without the option: two panels.
    assert len(results.plot_results(tmp_path)[ENV_A].axes) == 2
