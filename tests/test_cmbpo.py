"""CMBPOAgent and its switches (cpo, trpo): the pieces against references
(Boltzmann weights, the margin, the rollout schedule, the archive), one epoch on
a fake environment, and launcher smoke runs with resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import numpy as np
import pytest
import tensorflow as tf
from conftest import ROOT
from gymnasium import spaces

from saferl_tf import envs
from saferl_tf.agents import CMBPOAgent, CPOAgent, Transition, TRPOAgent
from saferl_tf.agents.base import preset_names
from saferl_tf.agents.cmbpo import (
    boltzmann_epoch_probabilities,
    updated_margin,
)
from saferl_tf.config import build_config
from saferl_tf.data.archive import TransitionArchive
from saferl_tf.errors import ConfigError
from saferl_tf.rl.schedules import schedule_length

OBSERVATION = spaces.Box(-np.inf, np.inf, (3,), np.float32)
ACTION = spaces.Box(-1.0, 1.0, (2,), np.float32)
# A known cost (the first observation entry above 0.5) and a learned reward.
TASK = envs.TaskFunctions(reward=None,
                          cost=lambda o, a, n: tf.cast(n[..., 0] > 0.5, tf.float32))  # fmt: skip


def config_for(cls, **overrides):
    return build_config(cls.Config, preset_names(cls), "debug", {"jit": False, **overrides})


def test_boltzmann_epoch_weights():
    kls = np.array([0.0, 0.5, 2.0])
    probabilities = boltzmann_epoch_probabilities(kls, 2.0)
    expected = np.exp(-2.0 * kls) / np.exp(-2.0 * kls).sum()
    np.testing.assert_allclose(probabilities, expected, rtol=1e-12)
    # Huge KLs do not underflow to 0 / 0; negative estimates count as 0.
    np.testing.assert_allclose(boltzmann_epoch_probabilities([1e4, 1e4 + 1], 2.0).sum(), 1.0)
    np.testing.assert_allclose(boltzmann_epoch_probabilities([-1.0, 0.0], 2.0), [0.5, 0.5])


def test_the_margin_update():
    # Above the limit it grows by lr (cost - limit) / T; it decays and never goes negative.
    margin = updated_margin(0.0, 30.0, 10.0, 1000)
    assert margin == pytest.approx(1e-4 * 20 / 1000)
    assert updated_margin(margin, 30.0, 10.0, 1000) == pytest.approx(0.9999 * margin + 2e-6)
    assert updated_margin(1e-7, 0.0, 10.0, 1000) == 0.0
    values, margin = [], 0.0
    for _ in range(5):
        margin = updated_margin(margin, 12.0, 10.0, 1000)
        values.append(margin)
    assert np.all(np.diff(values) > 0)


def test_the_rollout_schedule_is_mbpos_linear_horizon():
    schedule = (10, 500, 5, 30)
    assert [schedule_length(e, schedule) for e in (0, 10, 255, 500, 900)] == [5, 5, 17, 30, 30]


def test_the_archive_keeps_the_newest_rows_in_order_and_survives_a_checkpoint(tmp_path):
    archive = TransitionArchive(5, {"x": ((2,), np.float32), "epoch": ((), np.int32)})
    archive.add(x=np.arange(8, dtype=np.float32).reshape(4, 2), epoch=np.arange(4))
    archive.add(x=np.arange(8, 14, dtype=np.float32).reshape(3, 2), epoch=np.arange(4, 7))
    assert len(archive) == 5 and archive.added == 7
    np.testing.assert_array_equal(archive.fields()["epoch"], [2, 3, 4, 5, 6])
    np.testing.assert_array_equal(archive.newest(2)["x"], [[10, 11], [12, 13]])
    archive.before_checkpoint()
    path = tf.train.Checkpoint(archive=archive).save(str(tmp_path / "ckpt"))
    fresh = TransitionArchive(5, {"x": ((2,), np.float32), "epoch": ((), np.int32)})
    tf.train.Checkpoint(archive=fresh).restore(path)
    fresh.after_restore()
    for key, value in archive.fields().items():
        np.testing.assert_array_equal(fresh.fields()[key], value)
    fresh.add(x=np.zeros((1, 2), np.float32), epoch=np.array([7]))
    np.testing.assert_array_equal(fresh.fields()["epoch"], [3, 4, 5, 6, 7])


def _run(agent, steps, seed=0, cost_every=None):
    """A 3-D random walk driven by the action; cost when x[0] > 0.5 (or, with
    ``cost_every``, at every cost_every-th step)."""
    rng = np.random.default_rng(seed)
    observation = rng.normal(size=(1, 3)).astype(np.float32) * 0.1
    metrics = []
    for t in range(steps):
        action = agent.act(observation, explore=True)
        following = observation.copy()
        following[:, :2] += 0.1 * action
        following[:, 2] = 0.9 * following[:, 2] + 0.1 * rng.normal()
        reward = np.array([-float(np.sum(following[:, :2] ** 2))])
        cost = np.array([float(following[0, 0] > 0.5)])
        if cost_every:
            cost = np.array([float(t % cost_every == 0)])
        truncated = np.array([t % 50 == 49])
        agent.observe(Transition(observation, action, reward, cost, following,
                                 np.array([False]), truncated))  # fmt: skip
        observation = (
            rng.normal(size=(1, 3)).astype(np.float32) * 0.1 if truncated[0] else following
        )
        result = agent.update()
        if result:
            metrics.append(result)
    return metrics


@pytest.mark.parametrize("cls, use_model", [(CMBPOAgent, True), (CPOAgent, False)])
def test_an_epoch_updates_policy_values_and_model(cls, use_model):
    agent = cls(OBSERVATION, ACTION, config_for(cls), task=TASK if use_model else None)
    before = [v.numpy().copy() for v in agent.policy.parameters]
    steps = 200 + 200 + 5 if use_model else 400 + 5
    metrics = _run(agent, steps)
    epochs = [m for m in metrics if "policy/case" in m]
    assert len(epochs) == 1, [sorted(m) for m in metrics]
    epoch = epochs[0]
    assert all(np.isfinite(v) for v in epoch.values())
    assert agent.schedule.epoch == 1
    assert epoch["policy/kl"] <= agent.config.target_kl * 1.0001
    if epoch["policy/accepted"]:
        assert any(
            not np.array_equal(b, v.numpy()) for b, v in zip(before, agent.policy.parameters)
        )
    if use_model:
        assert "model/train_loss" in metrics[0] and metrics[0]["rollout/uncertainty_budget"] > 0
        assert epoch["rollout/samples"] > 0 and epoch["policy/next_real_samples"] >= 50
        # All real (no model samples wanted): one chunk still measures the disagreement.
        batch, measured = agent._model_samples(0)
        assert batch is None and measured["rollout/samples"] == 0
        assert measured["rollout/chunks"] == 1 and measured["rollout/disagreement"] > 0
    else:
        assert "rollout/samples" not in epoch
    assert bool(agent.value.fitted.numpy())


@pytest.mark.parametrize("constraint_cost", ["real", "batch"])
def test_the_constraint_takes_its_cost_from_the_real_steps_unless_told(constraint_cost):
    """Real steps cost 0.1 per step, the model's known cost function says 0: the
    batch (half model samples) halves the cost. Against a limit of 0.06 per
    step, only the real steps' cost makes the policy infeasible."""
    model_says_free = envs.TaskFunctions(reward=None, cost=lambda o, a, n: tf.zeros_like(n[..., 0]))
    config = config_for(CMBPOAgent, episode_length=100, cost_limit=6.0,
                        constraint_cost=constraint_cost)  # fmt: skip
    agent = CMBPOAgent(OBSERVATION, ACTION, config, task=model_says_free)
    epoch = next(m for m in _run(agent, 405, cost_every=10) if "policy/case" in m)
    assert epoch["policy/real_cost_per_step"] == pytest.approx(0.1)
    assert epoch["policy/batch_cost_per_step"] < 0.075  # Model samples dilute it.
    used = epoch[f"policy/{constraint_cost}_cost_per_step"]
    assert epoch["policy/constraint"] == pytest.approx(used - 0.06 + epoch["policy/margin"])
    infeasible = epoch["policy/case"] in (0.0, 1.0)
    assert infeasible == (constraint_cost == "real"), epoch["policy/case"]


def test_the_policy_update_traces_once_over_epochs():
    agent = CPOAgent(OBSERVATION, ACTION, config_for(CPOAgent, jit=True))
    _run(agent, 1210)
    assert agent.schedule.epoch == 3 and agent.trace_counts["policy_update"] == 1


def test_trpo_refuses_the_constraint_and_bad_settings_are_one_line_errors():
    with pytest.raises(ConfigError, match="use --agent=cpo"):
        TRPOAgent(OBSERVATION, ACTION, config_for(TRPOAgent, safety=True))
    with pytest.raises(ConfigError, match="unknown constraint_cost 'model'; accepted: real, batch"):
        CMBPOAgent(OBSERVATION, ACTION, config_for(CMBPOAgent, constraint_cost="model"))
    with pytest.raises(ConfigError, match="unknown rollout_mode 'fast'"):
        CMBPOAgent(OBSERVATION, ACTION, config_for(CMBPOAgent, rollout_mode="fast"))
    with pytest.raises(ConfigError, match="action_repeat=1"):
        CMBPOAgent(OBSERVATION, ACTION, config_for(CMBPOAgent, action_repeat=2))


def _train(python, env, run_dir, agent, *args, timeout=400):
    command = [python, str(ROOT / "launchers" / "train.py"), f"--agent={agent}", "--config=debug",
               "--env=sgym_SafetyHalfCheetahVelocity-v1", "--eval_every=0", "--noprogress",
               f"--run_dir={run_dir}", "--episode_length=100", *args]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env) if timeout is None else subprocess.run(
        command, capture_output=True, text=True, env=env, timeout=timeout)  # fmt: skip


@pytest.mark.parametrize("agent, extra", [("cmbpo", []), ("cmbpo", ["--nosafety"]),
                                          ("cpo", []), ("trpo", [])])  # fmt: skip
def test_launcher_smoke_run_of_each_switch(python, subprocess_env, tmp_path, agent, extra):
    run_dir = tmp_path / agent
    result = _train(python, subprocess_env, run_dir, agent, "--total_steps=900",
                    "--checkpoint_every=900", *extra)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    cases = [row["policy/case"] for row in rows if "policy/case" in row]
    assert cases, rows[-3:]
    if agent == "trpo" or extra:
        assert set(cases) == {4.0}
    if agent == "cmbpo":
        assert any("rollout/samples" in row for row in rows)
    assert any("train/episode_cost" in row for row in rows)


def test_a_killed_run_resumes_from_its_checkpoint(python, subprocess_env, tmp_path):
    run_dir = tmp_path / "run"
    process = _train(python, subprocess_env, run_dir, "cmbpo", "--total_steps=100000",
                     "--checkpoint_every=300", timeout=None)  # fmt: skip
    deadline = time.time() + 300
    checkpoints = run_dir / "checkpoints"
    while time.time() < deadline and not list(checkpoints.glob("ckpt-*.index")):
        time.sleep(1)
    time.sleep(2)  # Mid-epoch, past the exploration steps' model fit.
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert list(checkpoints.glob("ckpt-*.index")), process.stderr.read()[-3000:]
    step = max(int(path.stem.split("-")[1]) for path in checkpoints.glob("ckpt-*.index"))
    result = _train(python, subprocess_env, run_dir, "cmbpo", f"--total_steps={step + 900}",
                    "--checkpoint_every=300")  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["env_steps"] == step + 900
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert any("policy/case" in row and row["step"] > step for row in rows)


def test_evaluation_samples_the_gaussian_policy_unless_told_to_take_its_mean():
    observation = np.zeros((2000, 3), np.float32)
    agent = CPOAgent(OBSERVATION, ACTION, config_for(CPOAgent))
    mean = agent.policy.mean_and_log_std(tf.constant(observation[:1]))[0].numpy()[0]
    std = np.exp(agent.policy.log_std.numpy())
    actions = agent.act(observation, explore=False)
    # Samples around the mean with the policy's std (clipping to [-1, 1] aside).
    np.testing.assert_allclose(actions.mean(0), np.clip(mean, -1, 1), atol=0.05)
    np.testing.assert_allclose(actions.std(0), std, rtol=0.1)
    state = agent.rng.bit_generator.state
    agent.act(observation, explore=False)
    assert agent.rng.bit_generator.state == state  # Training's draws are untouched.
    fixed = CPOAgent(OBSERVATION, ACTION, config_for(CPOAgent, evaluate_with_samples=False))
    np.testing.assert_allclose(fixed.act(observation[:3], explore=False),
                               np.clip(np.stack([mean] * 3), -1, 1), rtol=1e-5)  # fmt: skip


def test_acting_uses_the_current_policy_and_the_schedule_survives_a_checkpoint(tmp_path):
    agent = CPOAgent(OBSERVATION, ACTION, config_for(CPOAgent, evaluate_with_samples=False))
    observation = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    expected = agent.policy.mean_and_log_std(tf.constant(observation))[0].numpy()
    np.testing.assert_allclose(agent.act(observation, explore=False), np.clip(expected, -1, 1),
                               rtol=1e-5, atol=1e-6)  # fmt: skip
    _run(agent, 410)  # One epoch: the policy changes, and acting follows it.
    expected = agent.policy.mean_and_log_std(tf.constant(observation))[0].numpy()
    np.testing.assert_allclose(agent.act(observation, explore=False), np.clip(expected, -1, 1),
                               rtol=1e-5, atol=1e-6)  # fmt: skip
    agent.save(tmp_path)
    fresh = CPOAgent(OBSERVATION, ACTION, config_for(CPOAgent, evaluate_with_samples=False))
    assert fresh.restore(tmp_path)
    assert fresh.schedule == agent.schedule and fresh.schedule.epoch == 1
    np.testing.assert_array_equal(fresh.archive.fields()["epoch"], agent.archive.fields()["epoch"])
    np.testing.assert_allclose(fresh.act(observation, explore=False),
                               agent.act(observation, explore=False))  # fmt: skip


@pytest.mark.slow
def test_cpo_keeps_its_limit_while_the_return_rises(tmp_path):
    """saferl_PointHazard-v0 (driving through the hazard costs about 4-6 per
    episode), limit 2 per episode, 40,000 steps (20 updates of 2,000): CPO's
    return rises with the cost under the limit; TRPO, the same agent without the
    constraint, drives through the hazard. About 10 minutes on 2 cores."""
    from saferl_tf.analysis.results import read_scalars
    from saferl_tf.training.experiment import RunSettings, train

    scalars = {}
    for agent in ("cpo", "trpo"):
        train(RunSettings(env="saferl_PointHazard-v0", agent=agent, config="hazard",
                          overrides={"evaluate_with_samples": "false"},  # The mean action.
                          results_dir=str(tmp_path), total_steps=40_000, eval_every=5000,
                          eval_episodes=5, progress=False))  # fmt: skip
        scalars[agent] = read_scalars(tmp_path / agent / "saferl_PointHazard-v0" / "0")
    limit = build_config(CPOAgent.Config, ["cpo", "cmbpo"], "hazard").cost_limit
    steps, returns = scalars["cpo"]["eval/episode_return"]
    _, costs = scalars["cpo"]["eval/episode_cost"]
    assert returns[-1] > returns[0] + 10.0, returns  # A random policy: about -25.
    assert np.all(costs[steps >= 10_000] <= limit), costs
    train_steps, train_costs = scalars["cpo"]["train/episode_cost"]
    assert train_costs[train_steps > 10_000].mean() <= limit
    # Without the constraint the same agent's cost exceeds the limit.
    trpo_steps, trpo_costs = scalars["trpo"]["train/episode_cost"]
    assert trpo_costs[trpo_steps > 30_000].mean() > limit


def test_start_states_follow_the_boltzmann_weights_of_their_epochs():
    """Epoch 0's stored policy means sit where KL(pi_now || pi_0) = 0.5, epoch 1's
    are the current policy's (KL 0): epoch 0 is drawn with probability
    e^-1 / (e^-1 + 1), whatever the epochs' sizes, and uniformly within."""
    agent = CMBPOAgent(OBSERVATION, ACTION, config_for(CMBPOAgent), task=TASK)
    rng = np.random.default_rng(0)
    sizes = {0: 100, 1: 300}
    sigma = float(np.exp(agent.policy.log_std.numpy()[0]))
    for epoch, size in sizes.items():
        observation = rng.normal(size=(size, 3)).astype(np.float32) + 10 * epoch
        mean = agent._policy_mean(observation)
        if epoch == 0:  # KL = sum_d offset^2 / (2 sigma^2) = 0.5 over the 2 dimensions.
            mean = mean + np.sqrt(0.5) * sigma
        agent.archive.add(observation=observation, action=np.zeros((size, 2), np.float32),
                          reward=np.zeros(size, np.float32), cost=np.zeros(size, np.float32),
                          next_observation=observation, terminated=np.zeros(size, np.float32),
                          truncated=np.zeros(size, np.float32), env_index=np.zeros(size, np.int32),
                          epoch=np.full(size, epoch, np.int32), policy_mean=mean)  # fmt: skip
    starts = agent._start_state_sampler()(20_000)
    from_first = starts[:, 0] < 5
    expected = np.exp(-1.0) / (np.exp(-1.0) + 1.0)
    assert abs(from_first.mean() - expected) < 0.015, from_first.mean()
    _, counts = np.unique(starts[from_first][:, 0], return_counts=True)
    assert len(counts) == 100 and counts.min() > 0.4 * counts.mean()  # Uniform within.


def test_the_chunk_disagreement_counts_the_step_that_crossed_the_budget():
    """The CMBPO code's measure behind the real-sample count: per step, the mean
    disagreement of the paths stepped (the crossing step included, a terminated
    path not stepped again), weighted by the paths that kept the step."""
    from saferl_tf.agents.cmbpo import chunk_disagreement

    alive = np.array([[1, 1, 0], [1, 0, 0], [1, 0, 0]], np.float64)
    terminated = np.array([[0, 0, 0], [0, 0, 0], [1, 0, 0]], np.float64)
    disagreement = np.array([[0.1, 0.2, 0.5], [0.3, 0.4, 0.9], [0.05, 7.0, 7.0]])
    mean, weight = chunk_disagreement(alive, terminated, disagreement, np.ones(3, bool))
    # Step means 0.15 (3 paths), 0.3 (paths 0 and 1), 0.5 (path 0); kept 3, 1, 0.
    assert weight == 4 and mean == pytest.approx((0.15 * 3 + 0.3 * 1) / 4)
    # Kept steps only (what this package measured before): 0.1625.
    assert mean != pytest.approx((disagreement * alive).sum() / alive.sum())
    # A path the sample target cut before it began is not counted.
    cut = np.array([[1, 1, 0], [0, 0, 0]], np.float64)
    mean, weight = chunk_disagreement(cut, terminated[:2], disagreement[:2],
                                      np.array([True, False]))  # fmt: skip
    assert weight == 2 and mean == pytest.approx((0.1 + 0.2) / 2)
