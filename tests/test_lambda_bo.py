"""The LAMBDA-BO experiment's pieces: the trial preset's sizes and schedule, and
a tuner study of LAMBDA itself that survives a killed tuner and hands its best
configuration to train.py."""

from __future__ import annotations

import signal
import subprocess
import time

import yaml
from conftest import ROOT

from saferl_tf.agents import LambdaAgent
from saferl_tf.agents.base import preset_names
from saferl_tf.bo.study import DONE, Study
from saferl_tf.bo.tuner import BEST_CONFIG
from saferl_tf.config import build_config

TUNE, TRAIN = (str(ROOT / "launchers" / f"{name}.py") for name in ("tune", "train"))


def test_the_bo_trial_preset_keeps_the_method_and_the_cost_rate():
    default = LambdaAgent.Config()
    trial = build_config(LambdaAgent.Config, preset_names(LambdaAgent), "bo_trial")
    assert trial.observation == "vector" and trial.action_repeat == default.action_repeat == 2
    # The paper's budget rate, 25 per 1,000 steps, over 100-step episodes.
    assert trial.episode_length == 100 and trial.cost_limit == 2.5
    assert trial.cost_limit / trial.episode_length == default.cost_limit / default.episode_length
    assert trial.penalty == default.penalty and trial.discount == default.discount
    # 20k steps: 100 pretraining updates, then 50 every 200 steps after the warm-up.
    updates = trial.pretrain_updates + (20_000 - trial.warmup_steps) // trial.train_every * 50
    assert trial.train_steps == 50 and updates == 4_850
    assert trial.swag_min_snapshots <= trial.swag_max_columns  # The posterior is sampled.
    assert max(trial.dense_units, trial.deter_size) == 64 and trial.horizon == 10


def _study(path):
    return Study.load(path) if (path / "study.json").exists() else None


def test_a_lambda_study_resumes_after_a_kill_and_its_best_config_trains(
    python, subprocess_env, tmp_path
):
    study_dir = tmp_path / "study"
    command = [python, TUNE, "--agent=lambda", "--config=debug", "--env=saferl_PointHazard-v0",
               "--space=discount:0.8:1,lambda_:0.8:1", "--trials=3", "--initial=2",
               "--trial_steps=300", "--eval_episodes=1", "--cost_limit=100",
               f"--study_dir={study_dir}"]  # fmt: skip
    process = subprocess.Popen(command, env=subprocess_env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        study = _study(study_dir)
        if study and study.with_status(DONE):
            break
        time.sleep(0.5)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    killed = time.time()
    finished = {t.index: t.outcome for t in _study(study_dir).with_status(DONE)}
    assert 1 <= len(finished) < 3
    result = subprocess.run(command, env=subprocess_env, capture_output=True, text=True,
                            timeout=900)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"{len(finished)} finished trials kept" in result.stdout
    study = Study.load(study_dir)
    assert len(study.with_status(DONE)) == 3
    assert {t.index: t.outcome for t in study.trials if t.index in finished} == finished
    assert study.trials[2].started > killed  # The third ran in the resumed tuner.
    best = yaml.safe_load((study_dir / BEST_CONFIG).read_text())
    assert best["agent"] == "lambda" and 0.8 <= best["discount"] <= 1.0
    dry = subprocess.run(
        [python, TRAIN, "--agent=lambda", f"--config=debug,{study_dir / BEST_CONFIG}",
         "--env=saferl_PointHazard-v0", "--dry_run", f"--results_dir={tmp_path / 'r'}"],
        env=subprocess_env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert dry.returncode == 0, dry.stderr[-2000:]
    assert f'"discount": {best["discount"]}' in dry.stdout
