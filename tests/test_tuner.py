"""The constrained tuner: search spaces, a synthetic study, resume, failures, backends."""

from __future__ import annotations

import errno
import io
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from saferl_tf import files as files_module
from saferl_tf.bo.space import Parameter, SearchSpace
from saferl_tf.bo.study import DONE, FAILED, STUDY_FILE, Study, Trial
from saferl_tf.bo.synthetic import PROBLEMS
from saferl_tf.bo.trials import TrialSpec
from saferl_tf.bo.tuner import BEST_CONFIG, Tuner, TunerSettings
from saferl_tf.errors import ConfigError, UserError

ROOT = Path(__file__).resolve().parent.parent
TUNE = str(ROOT / "launchers" / "tune.py")


def test_search_space_round_trip_and_errors():
    space = SearchSpace.parse("discount:0.8:1,learning_rate:1e-5:1e-3:log,units:64:512:int")
    assert space.names == ["discount", "learning_rate", "units"]
    values = space.decode([0.5, 0.5, 0.0])
    assert values["discount"] == pytest.approx(0.9)
    assert values["learning_rate"] == pytest.approx(1e-4)  # Geometric middle.
    assert values["units"] == 64 and isinstance(values["units"], int)
    assert space.decode([1.0, 1.0, 1.0])["units"] == 512
    np.testing.assert_allclose(space.encode({"discount": 0.9, "learning_rate": 1e-4, "units": 64}),
                               [0.5, 0.5, 0.0])  # fmt: skip
    assert SearchSpace.parse(space.to_text()).parameters == space.parameters
    design = space.design(5, "sobol", seed=0)
    assert design.shape == (5, 3) and (design >= 0).all() and (design <= 1).all()
    lhs = space.design(4, "lhs", seed=0)
    assert sorted(np.floor(lhs[:, 0] * 4)) == [0, 1, 2, 3]  # One point per stratum.
    mapping = {"discount": "0.8:1", "units": {"low": 1, "high": 4, "int": True}}
    assert SearchSpace.from_mapping(mapping).parameters[1] == Parameter("units", 1, 4, integer=True)
    bad_inputs = [
        ("discount:1:0.8", "low < high"),
        ("lr:0:1:log", "low > 0"),
        ("discount:0.8", "name:low:high"),
        ("x:0:1:cubic", "unknown option"),
    ]
    for bad, words in bad_inputs:
        with pytest.raises(ConfigError, match=words):
            SearchSpace.parse(bad)


def _synthetic_tuner(tmp_path, **kwargs) -> Tuner:
    problem = PROBLEMS["gardner"]
    values = dict(study_dir=str(tmp_path / "study"), space=problem.space.to_text(),
                  trials=14, initial=6, workers=2, cost_limit=problem.limit, seed=1,
                  poll_seconds=0.05)  # fmt: skip
    values.update(kwargs)
    spec = TrialSpec(agent=None, env=None, synthetic="gardner", seed=1)
    return Tuner(TunerSettings(**values), spec, out=io.StringIO())


def test_constrained_bo_finds_the_feasible_optimum_of_gardners_problem(tmp_path):
    study = _synthetic_tuner(tmp_path).run()
    optimum_point, optimum = PROBLEMS["gardner"].grid_optimum()
    assert len(study.with_status(DONE)) == 14
    best = study.best_feasible()
    assert best.outcome.feasible
    assert optimum - best.outcome.objective < 0.1  # The objective spans about [-2, 2].
    assert np.hypot(best.params["x"] - optimum_point[0], best.params["y"] - optimum_point[1]) < 0.5
    assert {t.source for t in study.trials} == {"sobol", "trieste-eci"}
    # Every recorded outcome is the problem's own value at the recorded point.
    for trial in study.trials:
        expected = PROBLEMS["gardner"].evaluate(trial.params)
        assert trial.outcome.objective == pytest.approx(expected["eval/episode_return"])
        assert trial.outcome.constraint == pytest.approx(expected["eval/episode_cost"])
    best_config = yaml.safe_load((tmp_path / "study" / BEST_CONFIG).read_text())
    assert best_config == best.params


def test_skopt_backend_minimizes_the_penalty_of_gardners_problem(tmp_path):
    study = _synthetic_tuner(tmp_path, backend="skopt", objective="penalty", trials=10,
                             initial=4, workers=1).run()  # fmt: skip
    assert [t.source for t in study.trials] == ["sobol"] * 4 + ["skopt-penalty"] * 6
    assert len(study.with_status(DONE)) == 10
    # Gardner's constraint is also the cost rate: penalty = 101 c(x) - f(x), in [-103, 103].
    problem = PROBLEMS["gardner"]
    axes = [np.linspace(p.low, p.high, 601) for p in problem.space.parameters]
    grid = np.stack([g.ravel() for g in np.meshgrid(*axes, indexing="ij")], axis=-1)
    optimum = float(np.min(101.0 * problem.constraint(grid) - problem.objective(grid)))
    penalties = [t.outcome.penalty for t in study.trials]
    for trial in study.trials:
        x = np.asarray([[trial.params["x"], trial.params["y"]]])
        expected = 101.0 * problem.constraint(x)[0] - problem.objective(x)[0]
        assert trial.outcome.penalty == pytest.approx(expected)
    best = study.best_penalty()
    assert best.outcome.penalty == min(penalties)
    # The GP's points, not the design's, come within 5 (2.5 % of the range) of the optimum.
    assert best.source == "skopt-penalty"
    assert best.outcome.penalty < min(penalties[:4]) - 5.0
    assert best.outcome.penalty - optimum < 5.0, (penalties, optimum)


def test_a_study_with_other_settings_is_refused(tmp_path):
    _synthetic_tuner(tmp_path, trials=2, initial=2).run()
    with pytest.raises(ConfigError, match="different settings"):
        _synthetic_tuner(tmp_path, trials=2, initial=2, cost_limit=0.2)


def _study(path: Path) -> Study | None:
    try:
        return Study.load(path)
    except (UserError, OSError):
        return None


CORRUPT_STUDIES = {
    "truncated": b'{"settings": {"space": "x:0:6,y:0:6", "des',
    "not text": b"\x80\xff\xfe study",
    "a list": b"[]",
    "an unknown trial field": json.dumps(
        {"settings": {}, "trials": [{"index": 0, "unit_point": [0.5], "params": {}, "new": 1}]}
    ).encode(),
}


@pytest.mark.parametrize("content", CORRUPT_STUDIES.values(), ids=CORRUPT_STUDIES.keys())
def test_a_corrupt_study_is_refused_and_left_as_it_is(tmp_path, content):
    path = tmp_path / "study" / STUDY_FILE
    path.parent.mkdir()
    path.write_bytes(content)
    with pytest.raises(UserError) as raised:
        _synthetic_tuner(tmp_path)
    message = str(raised.value)
    assert "\n" not in message and str(path) in message and "move it aside" in message
    assert path.read_bytes() == content  # Not overwritten by a new study.
    assert sorted(p.name for p in path.parent.iterdir()) == [STUDY_FILE]


def test_a_study_folder_that_cannot_be_made_is_a_user_error(tmp_path):
    # Tests run as root, which chmod does not stop: a regular file as the parent does.
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder\n")
    study_dir = blocker / "study"
    with pytest.raises(UserError, match=re.escape(f"cannot create the folder {study_dir} (")):
        _synthetic_tuner(tmp_path, study_dir=str(study_dir))
    with pytest.raises(UserError, match=re.escape(str(study_dir))):
        Study(study_dir, {}).save()
    assert blocker.read_text() == "a file, not a folder\n"


def _saved_study(tmp_path) -> Study:
    study = Study(tmp_path / "study", {"space": "x:0:1"})
    study.trials.append(Trial(index=0, unit_point=[0.5], params={"x": 0.5}))
    study.save()
    return study


def test_a_save_goes_through_a_temporary_file_and_a_rename(tmp_path, monkeypatch):
    study = _saved_study(tmp_path)
    renames = []
    real_replace = os.replace

    def replace(source, destination):
        # The whole new study is on disk under the temporary name before the rename.
        renames.append((Path(source), Path(destination), json.loads(Path(source).read_text())))
        real_replace(source, destination)

    monkeypatch.setattr(files_module.os, "replace", replace)
    study.trials.append(Trial(index=1, unit_point=[0.25], params={"x": 0.25}))
    study.save()
    ((source, destination, written),) = renames
    # Beside study.json: a rename within one file system is atomic.
    assert destination == study.path and source.parent == study.directory and source != study.path
    assert [t["index"] for t in written["trials"]] == [0, 1]
    assert len(Study.load(study.directory).trials) == 2
    assert sorted(p.name for p in study.directory.iterdir()) == [STUDY_FILE]


@pytest.mark.parametrize("failing", ["fsync", "replace"])
def test_a_failed_save_keeps_the_previous_study_whole(tmp_path, monkeypatch, failing):
    study = _saved_study(tmp_path)
    before = study.path.read_bytes()

    def full_disk(*args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(files_module.os, failing, full_disk)
    study.trials.append(Trial(index=1, unit_point=[0.25], params={"x": 0.25}))
    with pytest.raises(UserError) as raised:
        study.save()
    message = str(raised.value)
    assert "\n" not in message and str(study.path) in message
    assert "No space left on device" in message and "run the same command again" in message
    assert study.path.read_bytes() == before
    assert sorted(p.name for p in study.directory.iterdir()) == [STUDY_FILE]  # No temporary left.


def test_a_tuner_that_cannot_write_stops_with_a_user_error_and_resumes(tmp_path):
    tuner = _synthetic_tuner(tmp_path, trials=2, initial=2, workers=1)
    # trial_0 cannot be made: a regular file holds its name.
    blocker = tmp_path / "study" / "trial_0"
    blocker.write_text("")
    with pytest.raises(UserError, match=re.escape(f"cannot create the folder {blocker} (")):
        tuner.run()
    (interrupted,) = Study.load(tmp_path / "study").trials  # Saved, to be run again.
    assert interrupted.status == "running"
    blocker.unlink()
    study = _synthetic_tuner(tmp_path, trials=2, initial=2, workers=1).run()
    assert [t.status for t in study.trials] == [DONE, DONE]


@pytest.mark.parametrize("problem", ["corrupt study.json", "parent is a file"])
def test_tune_launcher_reports_an_unusable_study_in_one_line(python, subprocess_env, tmp_path,
                                                             problem):  # fmt: skip
    study_dir = tmp_path / "study"
    if problem == "corrupt study.json":
        study_dir.mkdir()
        (study_dir / STUDY_FILE).write_bytes(CORRUPT_STUDIES["truncated"])
        expected = f"{study_dir / STUDY_FILE} is not a study"
    else:
        tmp_path.joinpath("blocker").write_text("")
        study_dir = tmp_path / "blocker" / "study"
        expected = f"cannot create the folder {study_dir}"
    result = subprocess.run(
        [python, TUNE, "--synthetic=gardner", "--trials=1", "--initial=1",
         f"--study_dir={study_dir}"],
        env=subprocess_env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and expected in errors[0], result.stderr
    assert "Traceback" not in result.stderr
    if problem == "corrupt study.json":
        assert (study_dir / STUDY_FILE).read_bytes() == CORRUPT_STUDIES["truncated"]
        assert not list(study_dir.glob("trial_*"))  # No trial ran.


def test_killed_tuner_resumes_without_repeating_finished_trials(python, subprocess_env, tmp_path):
    study_dir = tmp_path / "study"
    command = [python, TUNE, "--synthetic=gardner", "--synthetic_sleep=1.5", "--trials=8",
               "--initial=8", "--workers=2", f"--study_dir={study_dir}"]  # fmt: skip
    process = subprocess.Popen(command, env=subprocess_env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        study = _study(study_dir)
        if study and len(study.with_status(DONE)) >= 3:
            break
        time.sleep(0.1)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    before = _study(study_dir)
    finished = {t.index: (t.started, t.outcome) for t in before.with_status(DONE)}
    assert 3 <= len(finished) < 8

    result = subprocess.run(command, env=subprocess_env, capture_output=True, text=True,
                            timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"{len(finished)} finished trials kept" in result.stdout
    after = Study.load(study_dir)
    assert len(after.with_status(DONE)) == 8
    for trial in after.trials:
        if trial.index in finished:
            assert (trial.started, trial.outcome) == finished[trial.index]  # Not run again.


def test_failed_trials_are_recorded_and_the_best_config_trains(python, subprocess_env, tmp_path):
    study_dir = tmp_path / "study"
    imports = f"{ROOT / 'tests' / 'fake_envs.py'},{ROOT / 'tests' / 'fake_agents.py'}"
    result = subprocess.run(
        [python, TUNE, "--agent=test_flaky", "--env=saferl_TestCounting-v0", "--space=diverge:0:1",
         "--trials=4", "--initial=4", "--workers=2", "--trial_steps=60", "--eval_episodes=1",
         "--cost_limit=5", f"--imports={imports}", f"--study_dir={study_dir}"],
        env=subprocess_env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    study = Study.load(study_dir)
    failed, done = study.with_status(FAILED), study.with_status(DONE)
    assert {t.params["diverge"] > 0.5 for t in failed} == {True}
    assert {t.params["diverge"] > 0.5 for t in done} == {False}
    assert len(failed) == 2 and len(done) == 2
    assert all("non-finite loss" in t.error for t in failed)
    assert all(t.outcome.episode_cost == 3.0 and t.outcome.feasible for t in done)
    summary = json.loads((study_dir / done[0].directory_name / "summary.json").read_text())
    assert summary["env_steps"] == 60
    # The written best configuration is a config file that train.py accepts.
    best = study_dir / BEST_CONFIG
    train = subprocess.run(
        [python, str(ROOT / "launchers" / "train.py"), f"--imports={imports}",
         "--agent=test_flaky", "--env=saferl_TestCounting-v0", f"--config={best}",
         "--total_steps=30", "--eval_every=0", f"--run_dir={tmp_path / 'best_run'}"],
        env=subprocess_env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert train.returncode == 0, train.stderr
    config = json.loads((tmp_path / "best_run" / "config.json").read_text())["agent_config"]
    assert config["diverge"] == study.best_feasible().params["diverge"]


@pytest.mark.parametrize(
    "args, words",
    [
        (["--space=discount:1:0"], "needs low < high"),
        (["--space=discont:0.8:1"], "unknown config key 'discont'"),
        (["--agent=lamda"], "unknown agent 'lamda'"),
        (["--synthetic=gardnr"], "did you mean gardner"),
        (["--trials=0"], "must be positive integers"),
    ],
)
def test_tune_launcher_bad_input(python, subprocess_env, tmp_path, args, words):
    result = subprocess.run(
        [python, TUNE, "--env=saferl_TestCounting-v0", f"--study_dir={tmp_path / 's'}",
         f"--imports={ROOT / 'tests' / 'fake_envs.py'}", *args],
        env=subprocess_env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and words in errors[0], result.stderr
    assert "Traceback" not in result.stderr


def test_tune_launcher_uses_the_agents_declared_search_space(python, subprocess_env, tmp_path):
    result = subprocess.run(
        [python, TUNE, "--agent=random", "--env=saferl_TestCounting-v0", "--trials=1",
         "--initial=1", "--trial_steps=20", f"--study_dir={tmp_path / 's'}",
         f"--imports={ROOT / 'tests' / 'fake_envs.py'}"],
        env=subprocess_env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (trial,) = Study.load(tmp_path / "s").trials
    assert trial.status == DONE and isinstance(trial.params["replay_capacity"], int)
    assert 1000 <= trial.params["replay_capacity"] <= 100000
    assert "best feasible: trial 0" in result.stdout


def test_identical_outcomes_cannot_be_modelled():
    from saferl_tf.bo.proposers import TriesteConstrained
    from saferl_tf.bo.study import Outcome

    same = Outcome(1.0, 2.0, 0.1, 1.0, 2.0, 25.0, 11.0)
    with pytest.raises(ValueError, match="same objective"):
        TriesteConstrained(1).propose(np.asarray([[0.2], [0.7]]), [same, same], np.zeros((0, 1)))


def test_a_failing_proposer_does_not_end_the_study(tmp_path):
    # RandomAgent ignores its hyperparameters, so every trial can score the
    # same and the GP has nothing to fit: the study must go on regardless.
    class Failing:
        name = "failing"

        def propose(self, points, outcomes, pending):
            raise ValueError("every finished trial has the same objective value")

    tuner = _synthetic_tuner(tmp_path, trials=4, initial=2, workers=1)
    tuner.proposer = Failing()
    study = tuner.run()
    assert [t.source for t in study.trials] == [
        "sobol",
        "sobol",
        "sobol-fallback",
        "sobol-fallback",
    ]
    assert len(study.with_status(DONE)) == 4
    assert "warning: failing could not propose trial 2" in tuner.out.getvalue()
