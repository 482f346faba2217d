"""tools/plot_study.py and the study series it draws."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

from saferl_tf.analysis.study import gp_mean_grid, plot_study, study_series
from saferl_tf.bo.space import SearchSpace
from saferl_tf.bo.study import DONE, FAILED, Outcome, Study, Trial

ROOT = Path(__file__).resolve().parent.parent


def _study(tmp_path) -> Study:
    space = SearchSpace.parse("a:0:2,b:1:3")
    study = Study(tmp_path / "study", {"space": space.to_text(), "cost_limit": 1.0})
    rng = np.random.default_rng(0)
    objectives = [0.5, 2.0, -1.0, 3.0, 1.0, 4.0]
    constraints = [0.5, 2.0, 0.2, 0.9, 0.1, 1.5]
    for index, (objective, constraint) in enumerate(zip(objectives, constraints)):
        unit = rng.random(2)
        outcome = Outcome(objective, constraint, 0.0, objective, constraint, 1.0, 0.0)
        study.trials.append(Trial(index, list(unit), space.decode(unit), DONE, outcome=outcome))
    study.trials.insert(3, Trial(6, [0.5, 0.5], space.decode([0.5, 0.5]), FAILED, error="boom"))
    study.save()
    return study


def test_series_match_the_trials(tmp_path):
    series = study_series(_study(tmp_path))
    np.testing.assert_array_equal(series.index, [0, 1, 2, 3, 4, 5, 6])
    np.testing.assert_array_equal(series.objective[:6], [0.5, 2.0, -1.0, 3.0, 1.0, 4.0])
    assert np.isnan(series.objective[6]) and series.failed.tolist() == [False] * 6 + [True]
    np.testing.assert_array_equal(series.feasible, [True, False, True, True, True, False, False])
    np.testing.assert_array_equal(series.best_feasible_so_far, [0.5, 0.5, 0.5, 3.0, 3.0, 3.0, 3.0])


def test_figure_draws_the_series_and_the_gp_mean(tmp_path):
    study = _study(tmp_path)
    figure = plot_study(study)
    objective_axis, constraint_axis, space_axis = figure.axes[:3]
    lines = {line.get_label(): line for line in objective_axis.get_lines()}
    np.testing.assert_array_equal(lines["feasible"].get_ydata(), [0.5, -1.0, 3.0, 1.0])
    np.testing.assert_array_equal(lines["infeasible"].get_ydata(), [2.0, 4.0])
    np.testing.assert_array_equal(
        lines["best feasible"].get_ydata(), study_series(study).best_feasible_so_far
    )
    limit = [line for line in constraint_axis.get_lines() if line.get_label() == "limit"]
    assert limit and limit[0].get_ydata()[0] == 1.0
    x, y, mean = gp_mean_grid(study)
    assert mean.shape == (50, 50) and x[0] == 0 and x[-1] == 2 and y[0] == 1 and y[-1] == 3
    # The GP (almost noise-free) passes near its data: check at the nearest grid cells.
    for trial in study.with_status(DONE):
        i = np.abs(x - trial.params["a"]).argmin()
        j = np.abs(y - trial.params["b"]).argmin()
        assert abs(mean[j, i] - trial.outcome.objective) < 1.0
    assert space_axis.get_xlabel() == "a" and space_axis.get_ylabel() == "b"


def test_launcher_writes_png_and_pdf(tmp_path, python, subprocess_env):
    _study(tmp_path)
    result = subprocess.run(
        [python, str(ROOT / "tools" / "plot_study.py"), f"--study_dir={tmp_path / 'study'}"],
        capture_output=True, text=True, env=subprocess_env, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    for suffix in ("png", "pdf"):
        assert (tmp_path / "study" / f"study.{suffix}").stat().st_size > 1000
    missing = subprocess.run(
        [python, str(ROOT / "tools" / "plot_study.py"), f"--study_dir={tmp_path / 'none'}"],
        capture_output=True, text=True, env=subprocess_env, timeout=300,
    )  # fmt: skip
    assert missing.returncode == 2 and "error: no study.json" in missing.stderr


def test_launcher_output_names_and_unwritable_output(tmp_path, python, subprocess_env):
    _study(tmp_path)

    def plot(output):
        return subprocess.run(
            [python, str(ROOT / "tools" / "plot_study.py"), f"--study_dir={tmp_path / 'study'}",
             f"--output={output}"],
            capture_output=True, text=True, env=subprocess_env, timeout=300,
        )  # fmt: skip

    # A dot in the name is not a suffix to replace; the folder is created.
    result = plot(tmp_path / "figures" / "lr0.5")
    assert result.returncode == 0, result.stderr
    written = [tmp_path / "figures" / f"lr0.5.{suffix}" for suffix in ("png", "pdf")]
    assert result.stdout.split() == [str(path) for path in written]
    assert all(path.stat().st_size > 1000 for path in written)
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    failed = plot(blocker / "study")
    assert failed.returncode == 2 and "Traceback" not in failed.stderr
    errors = [line for line in failed.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: cannot use {blocker} as the output folder: it is a file"]
    assert failed.stdout == ""
