"""launchers/train.py (the saferl-train program) as a user runs it: real subprocesses,
real signals."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from saferl_tf.agents import make_agent
from saferl_tf.envs import make
from saferl_tf.training.checkpoint import LoopState, RunCheckpoint
from saferl_tf.training.logger import read_metrics

ROOT = Path(__file__).resolve().parent.parent
TRAIN = str(ROOT / "launchers" / "train.py")
FAKE_ENVS = str(ROOT / "tests" / "fake_envs.py")


def run_train(python, env, *args, timeout=300):
    return subprocess.run(
        [python, TRAIN, *args], capture_output=True, text=True, env=env, timeout=timeout
    )


@pytest.mark.parametrize(
    "args, words",
    [
        (["--env=sgym_Safexp-PointGoal7-v0"], ["unknown environment id", "did you mean", "gym_"]),
        (["--env=PointGoal2"], ["unknown environment id", "sgym_, gym_, saferl_"]),
        (["--agent=randon"], ["unknown agent 'randon'", "did you mean random"]),
        (["--config.replay_capasity=5"], ["unknown config key 'replay_capasity'", "accepted"]),
        (["--config=tiny"], ["unknown config preset 'tiny'", "debug"]),
        (["--config.action_repeat=two"], ["bad value 'two'", "action_repeat"]),
        (["--total_steps=0"], ["--total_steps must be a positive integer"]),
        (["--observation=depth"], ["observation", "vector"]),
        (["--num_envs=x"], ["num_envs"]),
        (["--seeds=0,one"], ["--seeds must be comma-separated integers", "'one'"]),
        (["--seeds=1,1"], ["repeated seed"]),
        (["--seeds=0,1"], ["--run_dir names one run folder", "--results_dir"]),
        (["stray"], ["unexpected argument 'stray'", "--name=value"]),
        (["--log_dir=elsewhere"], ["deprecated name of --run_dir", "give only --run_dir"]),
    ],
)
def test_bad_input_is_one_line_exit_2_no_traceback(python, subprocess_env, tmp_path, args, words):
    result = run_train(python, subprocess_env, f"--run_dir={tmp_path / 'run'}", *args)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith(("error:", "FATAL"))]
    assert len(errors) == 1, result.stderr
    for word in words:
        assert word in errors[0]
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_random_run_on_safety_gymnasium_writes_episode_cost_events(
    python, subprocess_env, tmp_path
):
    result = run_train(
        python,
        subprocess_env,
        "--agent=random",
        "--env=sgym_Safexp-PointGoal1-v0",
        "--safety",
        "--total_steps=2000",
        "--eval_every=0",
        f"--results_dir={tmp_path / 'results'}",
    )
    assert result.returncode == 0, result.stderr
    run = tmp_path / "results" / "random" / "sgym_Safexp-PointGoal1-v0" / "0"
    assert str(run) in result.stderr  # The launcher says where it logs.
    tags = {}
    for path in run.glob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                tags.setdefault(value.tag, []).append(event.step)
    assert tags["train/episode_cost"] == [1000, 2000]
    assert "train/cost_rate" in tags and "train/episode_return" in tags
    assert json.loads((run / "config.json").read_text())["agent_config"]["safety"] is True


def test_seeds_run_one_folder_each(python, subprocess_env, tmp_path):
    result = run_train(python, subprocess_env, "--agent=random", "--env=saferl_PointHazard-v0",
                       "--seeds=0,3", "--total_steps=200", "--eval_every=0", "--noprogress",
                       f"--results_dir={tmp_path}")  # fmt: skip
    assert result.returncode == 0, result.stderr
    runs = tmp_path / "random" / "saferl_PointHazard-v0"
    assert sorted(p.name for p in runs.iterdir()) == ["0", "3"]
    returns = [
        [row["train/episode_return"] for row in read_metrics(runs / seed)
         if "train/episode_return" in row]
        for seed in ("0", "3")
    ]  # fmt: skip
    assert len(returns[0]) == 2 and returns[0] != returns[1]  # Different seeds, different runs.
    assert json.loads((runs / "3" / "config.json").read_text())["run"]["seed"] == 3


def _wait_for_checkpoint(process, checkpoints: Path, at_least: int, timeout=240):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        latest = tf.train.latest_checkpoint(str(checkpoints))
        if latest and int(latest.rsplit("-", 1)[-1]) >= at_least:
            return int(latest.rsplit("-", 1)[-1])
        if process.poll() is not None:
            raise AssertionError(f"training ended early: {process.stderr.read()}")
        time.sleep(0.2)
    process.kill()
    raise AssertionError("no checkpoint appeared in time")


def _start(python, env, run_dir, total_steps, *extra):
    return subprocess.Popen(
        [
            python,
            TRAIN,
            f"--imports={FAKE_ENVS}",
            "--env=saferl_TestCountingLong-v0",
            "--agent=random",
            f"--run_dir={run_dir}",
            f"--total_steps={total_steps}",
            "--checkpoint_every=2000",
            "--eval_every=0",
            "--log_every=500",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_sigkill_loses_at_most_the_steps_since_the_last_checkpoint(
    python, subprocess_env, tmp_path
):
    run_dir = tmp_path / "run"
    process = _start(python, subprocess_env, run_dir, 10**8)
    _wait_for_checkpoint(process, run_dir / "checkpoints", 6000)
    time.sleep(0.5)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    latest = tf.train.latest_checkpoint(str(run_dir / "checkpoints"))
    saved_step = int(latest.rsplit("-", 1)[-1])

    # What the checkpoint holds: the counters and every step up to it in replay.
    env = make("saferl_TestCountingLong-v0")
    agent = make_agent("random", env.observation_space, env.action_space, directory=run_dir)
    state = LoopState()
    assert RunCheckpoint(run_dir / "checkpoints", agent, state).restore()
    assert int(state.env_steps.numpy()) == saved_step
    assert agent.replay.num_steps == saved_step == agent.num_steps
    episode_starts = [c.first for c in agent.replay.chunks()]
    assert episode_starts.count(True) >= saved_step // 1000

    # Running the same command again resumes there and finishes.
    result = _start(python, subprocess_env, run_dir, saved_step + 3000)
    _, stderr = result.communicate(timeout=300)
    assert result.returncode == 0, stderr
    assert f"resumed from {latest} at step {saved_step}" in stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["env_steps"] == saved_step + 3000
    on_disk = sum(len(np.load(f)["action"]) for f in (run_dir / "replay").glob("*.npz"))
    assert on_disk == saved_step + 3000
    steps = [row["step"] for row in read_metrics(run_dir)]
    assert steps == sorted(steps)  # Rows from after the lost checkpoint were set aside.


def test_sigterm_writes_a_checkpoint_and_exits(python, subprocess_env, tmp_path):
    run_dir = tmp_path / "run"
    process = _start(python, subprocess_env, run_dir, 10**8)
    first = _wait_for_checkpoint(process, run_dir / "checkpoints", 2000)

    # Past that checkpoint (logged every 500 steps) before the signal, so that the
    # checkpoint written on the way out is a new one.
    def past_it():
        try:
            return any(row["step"] > first for row in read_metrics(run_dir))
        except ValueError:  # A line still being written.
            return False

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not past_it():
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM, stderr
    assert "Run the same command again to resume" in stderr
    latest = tf.train.latest_checkpoint(str(run_dir / "checkpoints"))
    assert int(latest.rsplit("-", 1)[-1]) > first
    assert latest in stderr


def test_without_schedule_flags_a_run_takes_the_environments_budget(
    python, subprocess_env, tmp_path
):
    run = tmp_path / "run"
    result = run_train(python, subprocess_env, "--agent=random",
                       "--env=saferl_TestCountingBudget-v0", f"--imports={FAKE_ENVS}",
                       f"--run_dir={run}", "--noprogress")  # fmt: skip
    assert result.returncode == 0, result.stderr
    record = json.loads((run / "config.json").read_text())["run"]
    assert (record["total_steps"], record["eval_every"], record["checkpoint_every"]) == (
        60, 10_000, 6
    )  # fmt: skip
    rows = read_metrics(run)
    assert [row["step"] for row in rows if "eval/episode_return" in row] == [60]
    assert json.loads((run / "summary.json").read_text())["env_steps"] == 60


def test_log_dir_is_a_deprecated_name_of_run_dir(python, subprocess_env, tmp_path):
    run = tmp_path / "run"
    result = run_train(python, subprocess_env, "--agent=random",
                       "--env=saferl_TestCountingBudget-v0", f"--imports={FAKE_ENVS}",
                       f"--log_dir={run}", "--noprogress")  # fmt: skip
    assert result.returncode == 0, result.stderr
    notes = [line for line in result.stderr.splitlines() if "--log_dir" in line]
    assert notes == ["note: --log_dir is deprecated for the run folder; use --run_dir"]
    assert json.loads((run / "summary.json").read_text())["env_steps"] == 60


def _help(command, env):
    result = subprocess.run([*command, "--help"], capture_output=True, text=True, env=env,
                            timeout=120)  # fmt: skip
    assert "Traceback" not in result.stderr
    flag_names = re.findall(r"^  --(?:\[no\])?(\w+)", result.stdout, re.M)
    return result.stdout.split("\nflags:")[0], flag_names


def test_launcher_and_module_are_one_program_with_its_help(python, subprocess_env):
    shim = _help([python, TRAIN], subprocess_env)
    module = _help([python, "-m", "saferl_tf.cli.train"], subprocess_env)
    assert shim == module
    doc, flag_names = shim
    assert doc.startswith("Trains an agent: ``saferl-train")
    # The run folder and the results root are the launcher's own flags, so --help
    # (not only --helpfull) shows them; absl's --log_dir is not among them.
    assert {"run_dir", "results_dir", "env", "agent", "config"} <= set(flag_names)
    assert "log_dir" not in flag_names and "verbosity" not in flag_names
