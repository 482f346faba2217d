"""Stopping a run: signals inside long update rounds, a second signal while a
checkpoint is written, progress during rounds, and non-finite evaluations."""

from __future__ import annotations

import math
import os
import signal

import numpy as np
import pytest
import tensorflow as tf
from gymnasium import spaces

from saferl_tf.agents import LambdaAgent, RandomAgent, Transition, register_agent
from saferl_tf.agents.base import UpdateControl, preset_names
from saferl_tf.config import build_config
from saferl_tf.errors import ConfigError, NonFiniteError
from saferl_tf.training import loop as loop_module
from saferl_tf.training.experiment import RunSettings, train
from saferl_tf.training.logger import read_metrics
from saferl_tf.training.loop import Interrupted


def _settings(tmp_path, **kwargs):
    values = dict(env="saferl_TestCounting-v0", agent="random", run_dir=str(tmp_path / "run"),
                  total_steps=100, eval_every=0, checkpoint_every=50, progress=False)  # fmt: skip
    values.update(kwargs)
    return RunSettings(**values)


@register_agent("test_long_rounds")
class LongRoundAgent(RandomAgent):
    """Rounds of 50 'train steps' every 20 steps; SIGINT arrives in step 3 of the
    round at step 40, as a user's Ctrl-C would."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.train_steps_done = tf.Variable(0, dtype=tf.int64, trainable=False)

    def _update(self):
        if self.num_steps % 20:
            return {}
        done = 0
        while done < 50 and not self.control.should_stop():
            done += 1
            self.train_steps_done.assign_add(1)
            if self.num_steps == 40 and done == 3:
                os.kill(os.getpid(), signal.SIGINT)
            self.control.report(done, 50)
        return {"round": float(done)}


def test_a_signal_stops_an_update_round_between_train_steps(tmp_path):
    with pytest.raises(Interrupted) as error:
        train(_settings(tmp_path, agent="test_long_rounds"))
    assert error.value.step == 40 and error.value.checkpoint.endswith("ckpt-40")
    assert error.value.exit_code == 128 + signal.SIGINT
    # Round 1 (step 20) ran all 50 steps; round 2 stopped after the third.
    rows = [r["round"] for r in read_metrics(tmp_path / "run") if "round" in r]
    assert rows == [50.0, 3.0]
    reader = tf.train.load_checkpoint(error.value.checkpoint)
    names = [n for n, _ in tf.train.list_variables(error.value.checkpoint)]
    (name,) = [n for n in names if "train_steps_done" in n]
    assert reader.get_tensor(name) == 53


def test_a_second_signal_waits_for_the_checkpoint_being_written(tmp_path, monkeypatch):
    """The second Ctrl-C arrives while the interrupt's checkpoint is written:
    the save completes and the run then stops with that checkpoint."""
    original = loop_module.Trainer._save_now
    calls = []

    def save_with_a_second_signal(self):
        calls.append(self.env_steps)
        if "signum" in self._stop:
            os.kill(os.getpid(), signal.SIGINT)  # Arrives mid-save.
        return original(self)

    monkeypatch.setattr(loop_module.Trainer, "_save_now", save_with_a_second_signal)
    with pytest.raises(Interrupted) as error:
        train(_settings(tmp_path, agent="test_long_rounds"))
    assert error.value.checkpoint is not None and error.value.checkpoint.endswith("ckpt-40")
    assert tf.train.latest_checkpoint(str(tmp_path / "run" / "checkpoints")).endswith("ckpt-40")
    # Resuming from it continues the run to the end.
    assert train(_settings(tmp_path, agent="test_long_rounds"))["env_steps"] == 100


def test_a_second_signal_outside_a_save_stops_at_once_keeping_the_last_checkpoint(tmp_path):
    @register_agent("test_double_interrupt")
    class DoubleInterrupt(RandomAgent):
        def _update(self):
            if self.num_steps == 70:
                os.kill(os.getpid(), signal.SIGINT)
                os.kill(os.getpid(), signal.SIGINT)  # Impatient: before the loop's check.
            return {}

    with pytest.raises(Interrupted) as error:
        train(_settings(tmp_path, agent="test_double_interrupt"))
    assert error.value.checkpoint is None and "second signal" in str(error.value)
    assert tf.train.latest_checkpoint(str(tmp_path / "run" / "checkpoints")).endswith("ckpt-50")


def test_progress_shows_long_update_rounds(tmp_path, monkeypatch, capsys):
    shown = []
    monkeypatch.setattr(loop_module.Progress, "status", lambda self, text: shown.append(text))

    @register_agent("test_slow_round")
    class SlowRound(RandomAgent):
        def _update(self):
            if self.num_steps == 10:
                for done in range(1, 4):
                    tf.timestamp()  # Stands in for a train step.
                    self.control._last -= 1.0  # As if each step took a second.
                    self.control.report(done, 3)
            return {}

    train(_settings(tmp_path, agent="test_slow_round", total_steps=20))
    updates = [text for text in shown if text]
    assert updates[0].startswith("update 1/3") and updates[-1].startswith("update 3/3")
    assert all("s/update" in text for text in updates)
    assert shown[-1] is None  # Cleared when the round ends.


def test_a_non_finite_evaluation_stops_the_run(tmp_path):
    @register_agent("test_nan_policy")
    class NanPolicy(RandomAgent):
        def _act(self, observation, explore, is_first):
            action = super()._act(observation, explore, is_first)
            return action if explore else action * np.nan

    with pytest.raises(NonFiniteError, match=r"eval/episode_return=nan at step 50.*ckpt-30"):
        train(_settings(tmp_path, agent="test_nan_policy", env="saferl_TestActionReward-v0",
                        eval_every=50, checkpoint_every=30))  # fmt: skip
    rows = read_metrics(tmp_path / "run")
    assert not any("eval/episode_return" in r for r in rows)


# --- LAMBDA --------------------------------------------------------------------


class StopAfter(UpdateControl):
    def __init__(self, count):
        self.count, self.reports = count, []

    def should_stop(self):
        return len(self.reports) >= self.count

    def report(self, done, total):
        self.reports.append((done, total))


def test_lambda_finishes_an_interrupted_round_after_a_restore(tmp_path):
    config = build_config(LambdaAgent.Config, preset_names(LambdaAgent), "debug",
                          {"observation": "vector", "pretrain_updates": 5})  # fmt: skip
    obs_space = spaces.Box(-np.inf, np.inf, (3,), np.float32)
    act_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
    agent = LambdaAgent(obs_space, act_space, config, seed=0, directory=tmp_path)
    rng = np.random.default_rng(0)
    for t in range(config.warmup_steps):
        o = rng.normal(size=(1, 3)).astype(np.float32)
        agent.observe(Transition(o, rng.uniform(-1, 1, (1, 1)).astype(np.float32),
                                 np.ones(1), np.zeros(1), o, np.array([t % 20 == 19]),
                                 np.array([False])))  # fmt: skip
    agent.control = StopAfter(2)
    agent.update()
    assert agent.control.reports == [(1, 5), (2, 5)]
    assert int(agent.remaining_updates.numpy()) == 3 and int(agent.last_train_step.numpy()) == -1
    path = agent.save(tmp_path / "agent")

    restored = LambdaAgent(obs_space, act_space, config, seed=0, directory=tmp_path)
    assert restored.restore(tmp_path / "agent") and path
    restored.control = StopAfter(100)
    restored.update()  # Finishes the round: the 3 remaining pretraining updates.
    assert restored.control.reports == [(3, 5), (4, 5), (5, 5)]
    assert int(restored.remaining_updates.numpy()) == 0
    assert int(restored.world_model.updates.numpy()) == 5
    # Observed warmup_steps agent steps, each action_repeat environment steps.
    assert int(restored.last_train_step.numpy()) == config.warmup_steps * config.action_repeat


def test_lambda_says_when_its_config_needs_a_gpu():
    def config(spec):
        return build_config(LambdaAgent.Config, preset_names(LambdaAgent), spec)

    paper = LambdaAgent.cpu_hint(config(""))
    assert paper is not None and "--config=vector,cpu" in paper and "\n" not in paper
    # The pixel model update measured 16.5 s beside the 36.5 s actor-critic one.
    assert "0.19 environment steps/s" in paper
    assert "0.34 environment steps/s" in LambdaAgent.cpu_hint(config("vector"))
    assert LambdaAgent.cpu_hint(config("vector,cpu")) is None
    assert LambdaAgent.cpu_hint(config("debug")) is None


def test_tuple_config_values_are_checked_when_parsed():
    with pytest.raises(ConfigError, match=r"model_learning_rate.*expected 2 comma-separated"):
        build_config(LambdaAgent.Config, ["lambda"], "", {"model_learning_rate": "1e-4"})
    with pytest.raises(ConfigError, match=r"model_learning_rate.*item 2"):
        build_config(LambdaAgent.Config, ["lambda"], "", {"model_learning_rate": "1e-4,fast"})
    with pytest.raises(ConfigError, match=r"expected 2"):
        build_config(LambdaAgent.Config, ["lambda"], "", {"model_learning_rate": [1e-4]})
    config = build_config(LambdaAgent.Config, ["lambda"], "", {"model_learning_rate": "1e-4,3e-4"})
    assert config.model_learning_rate == (1e-4, 3e-4)
    assert math.isclose(config.model_learning_rate[1], 3e-4)
