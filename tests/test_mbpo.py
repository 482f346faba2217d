"""MBPOAgent, VaGraMAgent and SACAgent: the schedules, an update on a fake
environment for every model loss, and launcher smoke runs with resume."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
import tensorflow as tf
from conftest import ROOT
from gymnasium import spaces

from saferl_tf.agents import MBPOAgent, SACAgent, Transition, VaGraMAgent
from saferl_tf.agents.base import preset_names
from saferl_tf.config import build_config
from saferl_tf.data.archive import TransitionArchive
from saferl_tf.errors import ConfigError
from saferl_tf.models.vagram import value_gradients
from saferl_tf.rl.schedules import linear_schedule

OBSERVATION = spaces.Box(-np.inf, np.inf, (3,), np.float32)
ACTION = spaces.Box(-1.0, 1.0, (2,), np.float32)


def config_for(cls, **overrides):
    return build_config(cls.Config, preset_names(cls), "debug", {"jit": False, **overrides})


def test_the_model_share_ramps_linearly():
    schedule = (0, 20, 0, 0.95)
    values = [linear_schedule(epoch, schedule) for epoch in (0, 10, 20, 40)]
    np.testing.assert_allclose(values, [0.0, 0.475, 0.95, 0.95])


def test_schedules_are_read_at_epoch_plus_one_as_the_published_code():
    # debug: 100 exploration steps, epochs of 100 steps, share [0, 2, 0, 0.5],
    # rollout lengths [1, 3, 1, 2], a refit every 50 steps.
    agent = MBPOAgent(OBSERVATION, ACTION, config_for(MBPOAgent))
    metrics = _run(agent, 251)
    shares = [m["sac/model_share"] for m in metrics]
    # Steps after exploration 0, 50 (epoch 0 -> read at 1), 100 (epoch 1 -> 2), 150.
    np.testing.assert_allclose(shares[:4], [0.25, 0.25, 0.5, 0.5])


def _run(agent, steps, seed=0, costs=None):
    """Drives the agent on a fake linear task; its cost is 1 where x0 > 0.3, or ``costs[t]``."""
    rng = np.random.default_rng(seed)
    observation = rng.normal(size=(1, 3)).astype(np.float32)
    metrics = []
    for t in range(steps):
        action = agent.act(observation, explore=True)
        following = (0.9 * observation + 0.1 * np.concatenate([action, action[:, :1]], 1)
                     ).astype(np.float32)  # fmt: skip
        reward = np.array([-float(np.sum(following**2))])
        cost = np.array([float(following[0, 0] > 0.3) if costs is None else costs[t]])
        done = t % 40 == 39
        agent.observe(Transition(observation, action, reward, cost, following,
                                 np.array([False]), np.array([done])))  # fmt: skip
        observation = rng.normal(size=(1, 3)).astype(np.float32) if done else following
        result = agent.update()
        if result:
            metrics.append(result)
    return metrics


@pytest.mark.parametrize("cls, overrides", [
    (MBPOAgent, {}), (VaGraMAgent, {}), (VaGraMAgent, {"model_loss": "vagram_unbounded"}),
    (MBPOAgent, {"model_loss": "mse"}), (SACAgent, {"safety": True}),
    (VaGraMAgent, {"safety": True}),
])  # fmt: skip
def test_updates_run_for_every_model_loss_and_safety(cls, overrides):
    agent = cls(OBSERVATION, ACTION, config_for(cls, **overrides))
    metrics = _run(agent, 260)
    assert metrics and all(np.isfinite(v) for m in metrics for v in m.values())
    last = metrics[-1]
    assert "sac/critic_loss" in last
    if agent.config.use_model:
        assert any("model/train_loss" in m for m in metrics)
        assert agent.model_buffer is not None and len(agent.model_buffer["reward"]) > 0
        assert int(agent.model_fits.numpy()) >= 3
    if agent.config.safety:
        assert "lagrangian/multiplier" in last and "sac/cost_value" in last


def test_vagram_fits_use_the_critics_value_gradients_and_the_mse_warmup_ends():
    agent = VaGraMAgent(OBSERVATION, ACTION, config_for(VaGraMAgent, mse_warmup_fits=1))
    _run(agent, 210)
    assert agent.gradient_cache.computations >= 2
    gradients = agent.gradient_cache._gradients
    assert gradients.shape[1:] == (4, 3) and np.any(gradients != 0)
    # Every fit (warm-up with the MSE and after it) reuses one traced train step.
    assert int(agent.model_fits.numpy()) >= 3 and float(agent.vagram_loss.mse_weight.numpy()) == 0
    (steps,) = agent.ensemble._custom.values()
    assert steps.train.experimental_get_tracing_count() == 1


def test_add_mse_keeps_the_mse_in_every_vagram_fit():
    config = config_for(VaGraMAgent, mse_warmup_fits=1, add_mse=True)
    agent = VaGraMAgent(OBSERVATION, ACTION, config)
    _run(agent, 210)
    assert int(agent.model_fits.numpy()) >= 3 and float(agent.vagram_loss.mse_weight.numpy()) == 1


@pytest.mark.parametrize("cls", [MBPOAgent, VaGraMAgent])
def test_model_max_steps_bounds_every_fit(cls):
    # debug: batches of 64, at most 5 epochs; after 250 steps a fit has 200
    # training rows (4 batches per epoch), so an unbounded fit can take 20 steps.
    bounded = cls(OBSERVATION, ACTION, config_for(cls, model_max_steps=3, model_patience=100))
    free = cls(OBSERVATION, ACTION, config_for(cls, model_patience=100))
    bounded_steps = [m["model/steps"] for m in _run(bounded, 251) if "model/steps" in m]
    free_steps = [m["model/steps"] for m in _run(free, 251) if "model/steps" in m]
    assert bounded_steps and max(bounded_steps) == 3
    assert max(free_steps) > 3


def test_sac_collects_with_samples_and_mbpo_with_the_mean_as_the_published_code():
    assert not config_for(SACAgent).collect_with_mean
    assert config_for(MBPOAgent).collect_with_mean and config_for(VaGraMAgent).collect_with_mean


def test_bad_settings_are_one_line_errors():
    with pytest.raises(ConfigError, match="unknown model_loss 'l1'"):
        MBPOAgent(OBSERVATION, ACTION, config_for(MBPOAgent, model_loss="l1"))
    with pytest.raises(ConfigError, match="model_max_steps must be >= 0"):
        MBPOAgent(OBSERVATION, ACTION, config_for(MBPOAgent, model_max_steps=-1))
    with pytest.raises(ConfigError, match="model_retain_epochs must be >= 1, got 0"):
        MBPOAgent(OBSERVATION, ACTION, config_for(MBPOAgent, model_retain_epochs=0))


def _train(python, env, run_dir, agent, *args):
    command = [python, str(ROOT / "launchers" / "train.py"), f"--agent={agent}", "--config=debug",
               "--env=gym_InvertedPendulum-v4", "--eval_every=0", "--noprogress",
               f"--run_dir={run_dir}", *args]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=400)


def test_the_target_entropy_is_configured_or_minus_the_action_size():
    assert MBPOAgent(OBSERVATION, ACTION, config_for(MBPOAgent)).learner.target_entropy == -1.0
    config = build_config(MBPOAgent.Config, preset_names(MBPOAgent), "debug",
                          {"jit": False, "target_entropy": None})  # fmt: skip
    assert MBPOAgent(OBSERVATION, ACTION, config).learner.target_entropy == -2.0


def test_the_cost_limit_is_a_per_episode_budget_as_a_discounted_cost_value():
    # 25 per 1,000 steps is 0.025 per step, 2.5 as a cost value at 0.99 (and 0.25 at 0.9).
    for discount, expected in ((0.99, 2.5), (0.9, 0.25)):
        config = config_for(SACAgent, safety=True, cost_limit=25.0, episode_length=1000,
                            cost_discount=discount)  # fmt: skip
        learner = SACAgent(OBSERVATION, ACTION, config).learner
        assert learner.discounted_cost_limit == pytest.approx(expected, rel=1e-12)


def test_the_measured_cost_steps_the_multiplier_once_per_step_after_exploration():
    # debug: 100 exploration steps. Limit 2 per 10 steps (0.2 per step), gamma_c 0.9:
    # g_m = (rate - 0.2) / 0.1 over the last 10 steps after exploration.
    config = config_for(SACAgent, safety=True, cost_limit=2.0, episode_length=10,
                        cost_discount=0.9, initial_penalty=1e-2,
                        initial_multiplier=0.5)  # fmt: skip
    agent = SACAgent(OBSERVATION, ACTION, config)
    assert not agent.learner.multiplier_from_critic
    # Costs 0/1 at random, often until step 130, then never: g_m takes both signs.
    rng = np.random.default_rng(3)
    costs = (rng.uniform(size=160) < np.where(np.arange(160) < 130, 0.6, 0.0)).astype(float)
    _run(agent, 160, costs=costs)
    np.testing.assert_array_equal(agent.real.fields()["cost"], costs)
    multiplier, signs = 0.5, set()
    for step in range(100, 160):  # The SAC updates leave the multiplier alone.
        g = (costs[100 : step + 1][-10:].mean() - 0.2) / 0.1
        multiplier, signs = max(0.0, multiplier + 1e-2 * g), signs | {np.sign(g)}
    assert {-1.0, 1.0} <= signs
    assert float(agent.learner.penalty.multiplier) == pytest.approx(multiplier, rel=1e-5)
    assert agent.measured_cost_rate() == pytest.approx(costs[-10:].mean(), rel=1e-12)


def test_with_the_critic_signal_the_sac_updates_step_the_multiplier():
    config = config_for(SACAgent, safety=True, multiplier_signal="cost_critic",
                        initial_penalty=1e-2, initial_multiplier=0.5)  # fmt: skip
    agent = SACAgent(OBSERVATION, ACTION, config)
    assert agent.learner.multiplier_from_critic and not agent.measures_cost
    metrics = _run(agent, 99)
    assert not metrics and float(agent.learner.penalty.multiplier) == 0.5  # Exploring.
    metrics = _run(agent, 61, seed=1)
    assert metrics and float(agent.learner.penalty.multiplier) != 0.5
    assert "lagrangian/measured_cost_rate" not in metrics[-1]


def test_an_unknown_multiplier_signal_is_a_one_line_error():
    with pytest.raises(
        ConfigError, match="multiplier_signal 'episode'.*measured_cost, cost_critic"
    ):
        SACAgent(
            OBSERVATION, ACTION, config_for(SACAgent, safety=True, multiplier_signal="episode")
        )


def test_the_lagrange_multiplier_and_temperature_survive_a_checkpoint(tmp_path):
    config = config_for(VaGraMAgent, safety=True, cost_limit=0.0)
    agent = VaGraMAgent(OBSERVATION, ACTION, config)
    _run(agent, 160, costs=np.random.default_rng(0).integers(0, 2, 160))
    penalty = agent.learner.penalty
    for index, variable in enumerate(penalty.variables):  # Distinct values to find again.
        variable.assign(tf.fill(variable.shape, 0.37 + index))
    state = {name: float(value) for name, value in penalty.metrics().items()}
    assert state["multiplier"] > 0.0
    log_alpha = float(agent.learner.log_alpha.numpy())
    agent.save(tmp_path)
    fresh = VaGraMAgent(OBSERVATION, ACTION, config)
    assert float(fresh.learner.penalty.multiplier.numpy()) != state["multiplier"]
    assert fresh.restore(tmp_path)
    restored = {name: float(value) for name, value in fresh.learner.penalty.metrics().items()}
    assert restored == state
    for saved, loaded in zip(penalty.variables, fresh.learner.penalty.variables, strict=True):
        np.testing.assert_array_equal(saved.numpy(), loaded.numpy())
    assert float(fresh.learner.log_alpha.numpy()) == log_alpha
    # The measured cost comes from the real data: a resumed run measures the same steps.
    assert fresh.measured_cost_rate() == agent.measured_cost_rate()
    assert 0 < agent.measured_cost_rate() < 1


def test_the_value_gradients_are_recomputed_when_the_critics_change_and_only_then():
    agent = VaGraMAgent(OBSERVATION, ACTION, config_for(VaGraMAgent))
    _run(agent, 210)
    agent._fit_model()
    computed = agent.gradient_cache.computations
    first = agent.gradient_cache._gradients
    agent._fit_model()  # Same critics, same data: the cached gradients.
    assert agent.gradient_cache.computations == computed
    batch = agent.real.sample(agent.config.batch_size, np.random.default_rng(0))
    agent._sac_step({k: tf.constant(v) for k, v in batch.items()}, tf.constant([1, 2]))
    agent._fit_model()  # One SAC update later: recomputed, from the new critics.
    assert agent.gradient_cache.computations == computed + 1
    data = agent.real.fields()["next_observation"]
    expected = value_gradients(agent.learner.value_functions(), data).numpy()
    np.testing.assert_allclose(agent.gradient_cache._gradients, expected, rtol=1e-4, atol=1e-6)
    assert not np.allclose(first, expected)


def test_the_model_buffer_keeps_one_fit_of_rollouts_when_fits_are_rarer_than_epochs():
    """With a refit every 150 steps and epochs of 100, the buffer holds one
    fit's rollouts, as mbrl-lib's capacity (an earlier version here computed
    0 for it, and the buffer grew without bound)."""
    config = config_for(MBPOAgent, model_train_every=150)
    agent = MBPOAgent(OBSERVATION, ACTION, config)
    _run(agent, 100 + 3 * 150 + 1)
    longest = config.rollout_schedule[3]
    fit = longest * config.rollouts_per_step * config.model_train_every
    assert int(agent.model_fits.numpy()) == 4
    assert 0 < len(agent.model_buffer["reward"]) <= fit


@pytest.mark.parametrize("agent", ["vagram", "mbpo"])
def test_launcher_smoke_run_and_resume(python, subprocess_env, tmp_path, agent):
    run_dir = tmp_path / agent
    result = _train(python, subprocess_env, run_dir, agent, "--total_steps=250",
                    "--checkpoint_every=250", "--distraction_dimensions=2")  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    result = _train(python, subprocess_env, run_dir, agent, "--total_steps=400",
                    "--checkpoint_every=250", "--distraction_dimensions=2")  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((run_dir / "summary.json").read_text())["env_steps"] == 400
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert any("model/train_loss" in row for row in rows)
    assert any("sac/critic_loss" in row and row["step"] > 250 for row in rows)
    config = json.loads((run_dir / "config.json").read_text())
    assert config["distraction_dimensions"] == 2


@pytest.mark.slow
def test_vagram_learns_the_inverted_pendulum_with_two_distractor_dimensions(tmp_path):
    """MBPO with the VaGraM model (``inverted_pendulum,cpu`` presets, collecting
    with the mean action as the published code) on gym_InvertedPendulum-v4 with
    2 distractor dimensions: under 200 through the first 5,000 steps, then
    balanced. Over seeds 0-2 of docs/BENCHMARKS.md the last two evaluations
    (5 episodes each) reached 660/827, 1000/1000 and 1000/1000; the bar here,
    600, leaves seed 0 a margin. About 45 minutes on 2 cores."""
    from saferl_tf.training.experiment import RunSettings, train
    from saferl_tf.training.logger import read_metrics

    run_dir = tmp_path / "run"
    train(RunSettings(env="gym_InvertedPendulum-v4", agent="vagram",
                      config="inverted_pendulum,cpu", distraction_dimensions=2, seed=0,
                      run_dir=str(run_dir), total_steps=12_000, eval_every=1000,
                      eval_episodes=5, checkpoint_every=1000, progress=False))  # fmt: skip
    evaluations = [(row["step"], row["eval/episode_return"]) for row in read_metrics(run_dir)
                   if "eval/episode_return" in row]  # fmt: skip
    early = [value for step, value in evaluations if step <= 5000]
    assert max(early) < 200, evaluations
    assert max(value for _, value in evaluations[-2:]) >= 600, evaluations


def test_the_archive_reads_one_fields_newest_rows_across_the_ring():
    archive = TransitionArchive(5, {"cost": ((), np.float32), "x": ((2,), np.float32)})
    seen = []
    for chunk in np.split(np.arange(12, dtype=np.float32), [1, 3, 4, 11]):
        archive.add(cost=chunk, x=np.zeros((len(chunk), 2), np.float32))
        seen.extend(chunk)
        for count in (1, 3, 5, 9):
            np.testing.assert_array_equal(archive.newest_of("cost", count),
                                          seen[-min(count, 5):])  # fmt: skip
            np.testing.assert_array_equal(archive.newest_of("cost", count),
                                          archive.newest(count)["cost"])  # fmt: skip
