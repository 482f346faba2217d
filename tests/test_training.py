import json
import math

import numpy as np
import pytest
import tensorflow as tf

from saferl_tf import files
from saferl_tf.agents import RandomAgent, register_agent
from saferl_tf.errors import CheckpointError, ConfigError, NonFiniteError, UserError
from saferl_tf.training.experiment import RunSettings, complete_schedule, train
from saferl_tf.training.logger import read_metrics


def _settings(tmp_path, **kwargs):
    values = dict(
        env="saferl_TestCounting-v0",
        agent="random",
        run_dir=str(tmp_path / "run"),
        total_steps=100,
        eval_every=50,
        checkpoint_every=50,
        log_every=20,
        progress=False,
    )
    values.update(kwargs)
    return RunSettings(**values)


def test_the_schedule_defaults_to_the_environments_budget(tmp_path):
    settings = RunSettings(env="saferl_TestCountingBudget-v0", agent="random",
                           run_dir=str(tmp_path / "run"), progress=False)  # fmt: skip
    summary = train(settings)
    assert summary["env_steps"] == 60
    rows = read_metrics(tmp_path / "run")
    assert [r["step"] for r in rows if "eval/episode_return" in r] == [60]  # At the end.
    run = json.loads((tmp_path / "run" / "config.json").read_text())["run"]
    assert (run["total_steps"], run["checkpoint_every"]) == (60, 6)
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").glob("ckpt-*.index"))[-1] == (
        "ckpt-60.index"
    )
    # Explicit values win; tasks without a budget get 1M steps, checkpointed every 10k.
    explicit = complete_schedule(RunSettings(env="saferl_TestCountingBudget-v0", total_steps=30))
    assert (explicit.total_steps, explicit.checkpoint_every) == (30, 3)
    explicit = complete_schedule(RunSettings(env="saferl_TestCountingBudget-v0",
                                             checkpoint_every=7))  # fmt: skip
    assert (explicit.total_steps, explicit.checkpoint_every) == (60, 7)
    default = complete_schedule(RunSettings(env="sgym_SafetyPointGoal1-v0"))
    assert (default.total_steps, default.checkpoint_every) == (1_000_000, 10_000)


def event_scalars(log_dir):
    """{tag: [(step, value)]} read back from the TensorBoard event files."""
    scalars = {}
    for path in sorted(tf.io.gfile.glob(f"{log_dir}/events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                number = float(tf.make_ndarray(value.tensor))
                scalars.setdefault(value.tag, []).append((event.step, number))
    return scalars


def test_loop_logs_safety_metrics_to_tensorboard_and_metrics_file(tmp_path):
    summary = train(_settings(tmp_path))
    run = tmp_path / "run"
    rows = read_metrics(run)
    episodes = [r for r in rows if "train/episode_return" in r]
    assert len(episodes) == 10  # 10-step episodes.
    for row in episodes:
        assert row["train/episode_return"] == 10.0
        assert row["train/episode_cost"] == 3.0  # Steps 3, 6, 9.
        assert row["train/cost_rate"] == pytest.approx(0.3)
    evals = [r for r in rows if "eval/episode_return" in r]
    assert [r["step"] for r in evals] == [50, 100]
    assert evals[0]["eval/episode_cost"] == 3.0
    assert any("train/steps_per_second" in r for r in rows)
    scalars = event_scalars(run)
    assert [v for _, v in scalars["train/episode_cost"]] == [3.0] * 10
    assert scalars["eval/episode_return"] == [(50, 10.0), (100, 10.0)]
    assert summary["env_steps"] == 100 and summary["eval/episode_cost"] == 3.0
    config = json.loads((run / "config.json").read_text())
    assert config["agent"] == "random" and config["agent_config"]["safety"] is False
    assert json.loads((run / "summary.json").read_text())["env_steps"] == 100
    assert tf.train.latest_checkpoint(str(run / "checkpoints")).endswith("ckpt-100")
    assert len(list((run / "replay").glob("*.npz"))) == 10


def test_cost_rate_counts_environment_steps_with_action_repeat(tmp_path):
    train(_settings(tmp_path, action_repeat=2, total_steps=40, eval_every=0))
    rows = [r for r in read_metrics(tmp_path / "run") if "train/episode_cost" in r]
    assert [r["step"] for r in rows] == [10, 20, 30, 40]
    assert all(r["train/episode_length"] == 10 for r in rows)
    assert all(r["train/cost_rate"] == pytest.approx(0.3) for r in rows)


def test_resumed_run_continues_the_same_random_stream(tmp_path):
    straight = train(_settings(tmp_path / "a", total_steps=120, eval_every=0))
    train(_settings(tmp_path / "b", total_steps=60, eval_every=0))
    resumed = train(_settings(tmp_path / "b", total_steps=120, eval_every=0))
    assert straight["env_steps"] == resumed["env_steps"] == 120

    def actions(root):
        files = sorted((root / "run" / "replay").glob("*.npz"))
        return np.concatenate([np.load(f)["action"] for f in files])

    np.testing.assert_array_equal(actions(tmp_path / "a"), actions(tmp_path / "b"))
    rows = read_metrics(tmp_path / "b" / "run")
    steps = [r["step"] for r in rows if "train/episode_return" in r]
    assert steps == sorted(steps) and len(steps) == 12


def test_resume_with_other_settings_is_refused(tmp_path):
    train(_settings(tmp_path, total_steps=20, eval_every=0))
    with pytest.raises(ConfigError, match="agent_config.safety"):
        train(_settings(tmp_path, total_steps=40, safety=True))


def test_a_run_made_before_an_option_existed_resumes_at_its_default(tmp_path):
    train(_settings(tmp_path, total_steps=20, eval_every=0))
    path = tmp_path / "run" / "config.json"
    record = json.loads(path.read_text())
    del record["agent_config"]["safety"]  # As a run made before the option was added.
    path.write_text(json.dumps(record))
    with pytest.raises(ConfigError, match="agent_config.safety"):  # Not its default: refused.
        train(_settings(tmp_path, total_steps=40, safety=True))
    assert train(_settings(tmp_path, total_steps=40, eval_every=0))["env_steps"] == 40


def _files(folder):
    """{relative path: bytes} of every file under ``folder``."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_a_run_another_process_is_training_is_refused_and_left_alone(tmp_path):
    train(_settings(tmp_path, total_steps=20, eval_every=0, checkpoint_every=10))
    run_dir = tmp_path / "run"
    before = _files(run_dir)
    # The lock is the OS's (flock): a second open file, as another process has, conflicts.
    with files.exclusive_lock(run_dir, "training run", "choose another --run_dir"):
        refusal = "another process is already running the training run in .*run; wait for it"
        with pytest.raises(UserError, match=refusal) as refused:
            train(_settings(tmp_path, total_steps=40, eval_every=0))
        assert "\n" not in str(refused.value)
        assert _files(run_dir) == before
    assert train(_settings(tmp_path, total_steps=40, eval_every=0))["env_steps"] == 40


def test_a_corrupt_newest_checkpoint_falls_back_to_the_previous_one(tmp_path):
    train(_settings(tmp_path, total_steps=20, eval_every=0, checkpoint_every=10))
    checkpoints = tmp_path / "run" / "checkpoints"
    data = sorted(checkpoints.glob("ckpt-20.data-*"))[0]
    data.write_bytes(b"\0" * 10)
    summary = train(_settings(tmp_path, total_steps=40, eval_every=0, checkpoint_every=10))
    assert summary["env_steps"] == 40
    # The unusable checkpoint is kept, out of the way; the run resumed from ckpt-10.
    assert (checkpoints / "unusable" / data.name).read_bytes() == b"\0" * 10
    steps = [r["step"] for r in read_metrics(tmp_path / "run") if "train/episode_return" in r]
    assert steps == sorted(steps) and len(steps) == len(set(steps))  # No step logged twice.


def test_checkpoints_that_all_fail_are_reported_and_kept(tmp_path):
    train(_settings(tmp_path, total_steps=20, eval_every=0, checkpoint_every=10))
    for data in (tmp_path / "run" / "checkpoints").glob("ckpt-*.data-*"):
        data.write_bytes(b"\0" * 10)
    before = _files(tmp_path / "run")
    with pytest.raises(CheckpointError, match="none of the 2 checkpoints"):
        train(_settings(tmp_path, total_steps=40, eval_every=0))
    assert _files(tmp_path / "run") == before


@pytest.mark.parametrize("damage", ["garbage {{{", None])
def test_a_damaged_or_missing_checkpoint_index_resumes_from_the_files(tmp_path, damage):
    train(_settings(tmp_path, total_steps=30, eval_every=0, checkpoint_every=10))
    checkpoints = tmp_path / "run" / "checkpoints"
    index = checkpoints / "checkpoint"
    if damage is None:
        index.unlink()
    else:
        index.write_text(damage)
    assert tf.train.latest_checkpoint(str(checkpoints)) is None  # What TF alone would see.
    replay_before = _files(tmp_path / "run" / "replay")
    summary = train(_settings(tmp_path, total_steps=50, eval_every=0, checkpoint_every=10))
    assert summary["env_steps"] == 50
    # Resumed at 30: the old episodes are untouched, and no step was logged twice.
    replay_after = _files(tmp_path / "run" / "replay")
    assert all(replay_after[name] == data for name, data in replay_before.items())
    steps = [r["step"] for r in read_metrics(tmp_path / "run") if "train/episode_return" in r]
    assert steps == sorted(steps) and len(steps) == len(set(steps)) and steps[-1] == 50
    assert tf.train.latest_checkpoint(str(checkpoints)).endswith("ckpt-50")
    if damage is not None:
        assert (checkpoints / "checkpoint.damaged").read_text() == damage


def test_a_run_folder_without_any_checkpoint_is_refused_and_untouched(tmp_path):
    train(_settings(tmp_path, total_steps=30, eval_every=0, checkpoint_every=10))
    checkpoints = tmp_path / "run" / "checkpoints"
    for path in checkpoints.glob("ckpt-*"):
        path.unlink()
    before = _files(tmp_path / "run")
    with pytest.raises(CheckpointError) as error:
        train(_settings(tmp_path, total_steps=60, eval_every=0))
    message = str(error.value)
    assert "replay files" in message and "metrics.jsonl" in message and "\n" not in message
    assert "no usable checkpoint" in message and "only checkpoint" in message
    assert _files(tmp_path / "run") == before


@register_agent("test_diverging")
class DivergingAgent(RandomAgent):
    """Reports a loss that turns NaN after 70 steps."""

    def _update(self):
        return {"loss": math.nan if self.num_steps > 70 else 1.0}


def test_non_finite_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path):
    settings = _settings(tmp_path, agent="test_diverging", total_steps=200, eval_every=0)
    with pytest.raises(NonFiniteError) as error:
        train(settings)
    message = str(error.value)
    assert "loss=nan at step 71" in message and "ckpt-50" in message and "\n" not in message
    checkpoints = tmp_path / "run" / "checkpoints"
    assert tf.train.latest_checkpoint(str(checkpoints)).endswith("ckpt-50")
    losses = [r["loss"] for r in read_metrics(tmp_path / "run") if "loss" in r]
    assert losses[-1] == 1.0  # The NaN was not logged as if it were a result.


def test_a_finished_run_is_not_trained_again(tmp_path, capsys):
    first = train(_settings(tmp_path, total_steps=30, eval_every=10))
    again = train(_settings(tmp_path, total_steps=30, eval_every=10))
    assert "already at step 30" in capsys.readouterr().err
    assert again["eval/episode_return"] == first["eval/episode_return"]
    assert len(list((tmp_path / "run" / "replay").glob("*.npz"))) == 3


def test_the_cost_rate_at_the_end_counts_the_unfinished_episode(tmp_path):
    train(_settings(tmp_path, total_steps=15, eval_every=0))
    rows = [r for r in read_metrics(tmp_path / "run") if "train/cost_rate" in r]
    # Costs at t = 3, 6, 9 of the finished episode and t = 3 of the running one.
    assert (rows[-1]["step"], rows[-1]["train/cost_rate"]) == (15, pytest.approx(4 / 15))


def test_episode_steps_read_the_tasks_time_limits():
    from saferl_tf import envs

    assert envs.episode_steps("saferl_ConstrainedPendulum-v0") == 200
    assert envs.episode_steps("gym_Hopper-v4") == 1000
    assert envs.episode_steps("sgym_SafetyPointGoal1-v0") == 1000
    assert envs.episode_steps("sgym_SafetyPointGoal1-v0", episode_length=300) == 300


def test_a_cost_limit_over_another_length_than_the_episodes_is_warned_about():
    from saferl_tf.agents import agent_class
    from saferl_tf.training.experiment import cost_limit_warning

    config = agent_class("pessimistic").Config
    # The pessimistic agent's cost limit is per 200 steps (the pendulum's episodes).
    warning = cost_limit_warning(config(safety=True, cost_limit=25.0), "sgym_SafetyPointGoal1-v0")
    assert "per episode_length=200 steps" in warning and "last 1000: 125 per episode" in warning
    assert "--config.episode_length=1000" in warning
    # --episode_length=200 makes the episodes as long as the limit's steps.
    assert cost_limit_warning(config(safety=True, cost_limit=25.0), "sgym_SafetyPointGoal1-v0",
                              episode_length=200) is None  # fmt: skip
    for quiet in (config(safety=True, cost_limit=25.0, episode_length=1000),
                  config(safety=False, cost_limit=25.0),
                  config(safety=True, cost_limit=0.0)):  # fmt: skip
        assert cost_limit_warning(quiet, "sgym_SafetyPointGoal1-v0") is None
    assert cost_limit_warning(config(safety=True, cost_limit=5.0),
                              "saferl_ConstrainedPendulum-v0") is None  # fmt: skip
