"""LambdaAgent: compiled steps traced once, sample selection, subclassing,
checkpoints, and launcher smoke runs on safety-gymnasium (vector and pixels)."""

from __future__ import annotations

import json
import subprocess

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from conftest import ROOT
from gymnasium import spaces

from saferl_tf.agents import LambdaAgent, Transition
from saferl_tf.agents.base import preset_names
from saferl_tf.config import build_config
from saferl_tf.models.world_model import scalar_output
from saferl_tf.rl.lagrangian import ConstraintPenalty
from saferl_tf.rl.safe_actor_critic import SafeActorCritic

OBSERVATION = spaces.Box(-np.inf, np.inf, (5,), np.float32)
ACTION = spaces.Box(-2.0, 2.0, (2,), np.float32)


def debug_config(**overrides):
    values = {"observation": "vector", "safety": True, **overrides}
    return build_config(LambdaAgent.Config, preset_names(LambdaAgent), "debug", values)


def filled_agent(cls=LambdaAgent, steps=60, seed=0, **overrides):
    """An agent whose replay holds ``steps`` steps of one 1-env episode stream."""
    agent = cls(OBSERVATION, ACTION, debug_config(**overrides), seed=seed)
    rng = np.random.default_rng(seed)
    observation = rng.normal(size=(1, 5)).astype(np.float32)
    for t in range(steps):
        action = rng.uniform(-2, 2, (1, 2)).astype(np.float32)
        following = (observation + 0.1 * rng.normal(size=(1, 5))).astype(np.float32)
        agent.observe(Transition(observation, action, np.array([observation[0, 0]]),
                                 np.array([float(t % 4 == 0)]), following,
                                 np.array([t % 30 == 29]), np.array([False])))  # fmt: skip
        observation = following if t % 30 != 29 else rng.normal(size=(1, 5)).astype(np.float32)
    return agent


def test_each_compiled_step_is_traced_once_over_three_updates():
    agent = filled_agent()
    for _ in range(3):
        metrics = agent.train_batch(agent._sample_batch())
    assert agent.trace_counts["model"] == 1 and agent.trace_counts["behavior"] == 1
    assert int(agent.world_model.updates.numpy()) == 3 and int(agent.behavior.updates.numpy()) == 3
    assert all(np.isfinite(float(v)) for v in metrics.values())
    for name in ("model/kl", "behavior/value_spread", "behavior/penalty_psi",
                 "lagrangian/multiplier", "lagrangian/penalty", "model/cost_loss"):  # fmt: skip
        assert name in metrics
    # SWAG collected at updates 2 (burn-in) and every 2 after it.
    assert int(agent.world_model.swag.snapshots.numpy()) == 1


def test_without_safety_the_cost_terms_are_off():
    agent = filled_agent(safety=False, jit=False)
    metrics = agent.train_batch(agent._sample_batch())
    assert "model/cost_loss" not in metrics and "behavior/penalty_psi" not in metrics
    assert float(agent.behavior.penalty.multiplier) == pytest.approx(1e-6)


def test_optimistic_and_pessimistic_selection_on_toy_tensors():
    agent = LambdaAgent(OBSERVATION, ACTION, debug_config())
    values = tf.constant([[1.0, 5.0, -1.0], [3.0, 2.0, -2.0]])  # [S = 2, N = 3]
    np.testing.assert_array_equal(agent.behavior.optimistic_index(values).numpy(), [1, 0, 0])
    np.testing.assert_array_equal(agent.behavior.pessimistic_index(-values).numpy(), [0, 1, 1])


class MostPessimisticValue(SafeActorCritic):
    """A behaviour learner that changes the optimism rule in three lines."""

    def optimistic_index(self, values):
        return tf.argmin(values, axis=0, output_type=tf.int32)


class FixedNoise(SafeActorCritic):
    """Imagines every posterior sample with the same noise: the samples' values
    then differ only through their weights."""

    def imagine(self, world_model, start, weights, seed):
        return super().imagine(world_model, start, weights, tf.constant([1, 2]))


class FixedNoiseLambda(LambdaAgent):
    behavior_class = FixedNoise


class FixedNoiseMostPessimistic(LambdaAgent):
    class behavior_class(FixedNoise, MostPessimisticValue):
        pass


def test_a_subclass_changes_the_optimism_rule(tmp_path):
    # SWAG snapshots at updates 2 and 4; weight samples differ from the second on.
    settings = dict(jit=False, posterior_samples=2, swag_burn_in=2, swag_period=2,
                    swag_min_snapshots=2)  # fmt: skip
    optimistic = filled_agent(cls=FixedNoiseLambda, **settings)
    pessimistic = filled_agent(cls=FixedNoiseMostPessimistic, **settings)
    # The same seed: the same initial weights (checked here, as the test needs it).
    assert (
        _checkpoint_values(optimistic.save(tmp_path / "o")).keys()
        == _checkpoint_values(pessimistic.save(tmp_path / "p")).keys()
    )
    batch = optimistic._sample_batch()
    for update in (1, 2, 3, 4):
        # Same seed, weights and batch: the agents stay equal while they do.
        high = float(optimistic.train_batch(batch)["behavior/chosen_mean_value"])
        low = float(pessimistic.train_batch(batch)["behavior/chosen_mean_value"])
        snapshots = int(optimistic.world_model.swag.snapshots.numpy())
        if update < 4:
            # Below two snapshots every sample is the same weights: with the noise
            # fixed, nothing is left for the rule to choose between.
            assert snapshots < 2 and low == pytest.approx(high, abs=1e-6), (update, low, high)
    # Two snapshots: distinct weight samples, and the subclass takes the lowest.
    assert snapshots == 2
    assert low < high - 1e-4, (low, high)

    # The posterior itself: distinct samples imagine distinct trajectories; the
    # same sample with the same noise imagines the same one.
    _, start = optimistic._model_step(batch, tf.constant([5, 6]))
    sampled = optimistic.world_model.swag.sample_weights(2, tf.constant([7, 8]))
    first, second = [w[0] for w in sampled], [w[1] for w in sampled]
    assert any(not np.allclose(a.numpy(), b.numpy()) for a, b in zip(first, second))
    imagine = lambda weights: optimistic.world_model.imagine(  # noqa: E731  (real noise)
        start, optimistic.behavior.imagination_policy, optimistic.config.horizon, weights,
        tf.constant([3, 4]))  # fmt: skip
    once, again, other = imagine(first), imagine(first), imagine(second)
    for key in ("features", "reward", "cost"):
        np.testing.assert_array_equal(once[key].numpy(), again[key].numpy(), err_msg=key)
        assert not np.allclose(once[key].numpy(), other[key].numpy()), key


def test_pretraining_trains_the_world_model_alone(tmp_path):
    """The first round (pretrain_updates) leaves actor, critics and multiplier as
    they were, as the published code; the next round trains them."""
    agent = filled_agent(jit=False, steps=120, warmup_steps=100, pretrain_updates=2)
    actor = [v.numpy().copy() for v in agent.behavior.actor.trainable_variables]
    model = [v.numpy().copy() for v in agent.world_model.rssm.trainable_variables]
    agent.update()  # Pre-training round.
    assert int(agent.world_model.updates.numpy()) == 2 and int(agent.behavior.updates.numpy()) == 0
    for before, variable in zip(actor, agent.behavior.actor.trainable_variables):
        np.testing.assert_array_equal(before, variable.numpy())
    assert any(
        not np.array_equal(b, v.numpy())
        for b, v in zip(model, agent.world_model.rssm.trainable_variables)
    )
    agent.train_batch(agent._sample_batch())  # A regular update trains the actor.
    assert int(agent.behavior.updates.numpy()) == 1
    assert any(
        not np.array_equal(b, v.numpy())
        for b, v in zip(actor, agent.behavior.actor.trainable_variables)
    )


def test_the_cost_limit_is_per_episode_and_compared_on_the_imagined_cost_scale():
    """25 per 1,000 environment steps with action repeat 2 is 0.05 per agent step;
    an imagined cost stream of exactly that, discounted, is the limit."""
    agent = LambdaAgent(OBSERVATION, ACTION, debug_config(cost_limit=25.0, episode_length=1000,
                                                          action_repeat=2))  # fmt: skip
    gamma = agent.config.safety_discount
    per_step = 25.0 / 1000 * 2
    discounted_stream = sum(per_step * gamma**t for t in range(200_000))  # NumPy-free reference
    assert agent.behavior.discounted_cost_limit == pytest.approx(discounted_stream, rel=1e-9)
    assert agent.behavior.discounted_cost_limit == pytest.approx(10.0)


def test_imagined_cost_is_the_cost_probability_times_the_action_repeat():
    agent = filled_agent(jit=False, action_repeat=3)
    _, start = agent._model_step(agent._sample_batch(), tf.constant([1, 2]))
    weights = agent.world_model.swag.sample_weights(1, tf.constant([3, 4]))
    imagined = agent.behavior.imagine(agent.world_model, start, [w[0] for w in weights],
                                      tf.constant([5, 6]))  # fmt: skip
    following = imagined["features"][:, 1:]
    probability = tf.sigmoid(scalar_output(agent.world_model.cost_head, following))
    np.testing.assert_allclose(imagined["cost"].numpy(), 3 * probability.numpy(), rtol=1e-5)


def test_the_unsafe_weight_correction_removes_the_class_weighting_shift():
    """A weighted Bernoulli fit (unsafe samples weighted w) of a rate p has its
    maximum at p_w = w p / (w p + 1 - p): its logit is logit(p) + log w, so the
    corrected imagination recovers p. Here the fit is gradient descent on the
    weighted log-likelihood of one logit, against that closed form."""
    rate, weight = 0.02, 100.0
    unsafe = (np.arange(5000) < rate * 5000).astype(np.float32)
    logit = tf.Variable(0.0)
    optimizer = keras.optimizers.Adam(0.1)
    weights = 1.0 + (weight - 1.0) * unsafe
    for _ in range(400):
        with tf.GradientTape() as tape:
            loss = -tf.reduce_mean(
                weights * tfp.distributions.Bernoulli(logits=logit).log_prob(unsafe)
            )
        optimizer.apply_gradients([(tape.gradient(loss, logit), logit)])
    fitted = float(tf.sigmoid(logit))
    assert fitted == pytest.approx(weight * rate / (weight * rate + 1 - rate), rel=1e-3)
    assert float(tf.sigmoid(logit - np.log(weight))) == pytest.approx(rate, rel=1e-3)
    # The agent applies the same shift in imagination when asked to.
    agent = filled_agent(jit=False, action_repeat=3, correct_unsafe_weight=True)
    _, start = agent._model_step(agent._sample_batch(), tf.constant([1, 2]))
    weights = agent.world_model.swag.sample_weights(1, tf.constant([3, 4]))
    imagined = agent.behavior.imagine(agent.world_model, start, [w[0] for w in weights],
                                      tf.constant([5, 6]))  # fmt: skip
    logits = scalar_output(agent.world_model.cost_head, imagined["features"][:, 1:])
    expected = 3 * tf.sigmoid(logits - np.log(agent.config.unsafe_weight))
    np.testing.assert_allclose(imagined["cost"].numpy(), expected.numpy(), rtol=1e-5)


def _checkpoint_values(path) -> dict:
    reader = tf.train.load_checkpoint(str(path))
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
            if "save_counter" not in name and "OBJECT_GRAPH" not in name}  # fmt: skip


def _network_weights(agent) -> dict:
    """{attribute/weight path: value} of every Keras network the agent holds."""
    return {f"{part}/{name}/{index}/{weight.name}": weight.numpy()
            for part in ("world_model", "behavior")
            for name, layer in vars(getattr(agent, part)).items()
            if isinstance(layer, keras.layers.Layer)
            for index, weight in enumerate(layer.weights)}  # fmt: skip


def test_checkpoint_round_trip_restores_every_variable(tmp_path):
    agent = filled_agent(jit=False)
    for _ in range(3):
        agent.train_batch(agent._sample_batch())
    saved = _checkpoint_values(agent.save(tmp_path / "first"))
    fresh = LambdaAgent(OBSERVATION, ACTION, debug_config(jit=False), seed=5)
    assert fresh.restore(tmp_path / "first")
    again = _checkpoint_values(fresh.save(tmp_path / "second"))
    # Networks, optimizer slots, SWAG moments, Lagrangian, counters, random state.
    assert saved.keys() == again.keys() and len(saved) > 100
    for name, value in saved.items():
        np.testing.assert_array_equal(value, again[name], err_msg=name)
    assert any("swag" in name and "deviations" in name for name in saved)
    assert (
        float(fresh.behavior.penalty.multiplier) == float(agent.behavior.penalty.multiplier) != 1e-6
    )
    assert (
        int(fresh.world_model.optimizer.iterations) == 3
        and int(fresh.world_model.swag.snapshots) == 1
    )
    # Every weight of every network, target critics included (layers held in a
    # list were once missing from checkpoints while the optimizers hid it).
    restored, original = _network_weights(fresh), _network_weights(agent)
    assert restored.keys() == original.keys() and any("target" in k for k in original)
    for name, value in original.items():
        np.testing.assert_array_equal(value, restored[name], err_msg=name)
    observation = np.zeros((1, 5), np.float32)
    first = np.ones(1, bool)
    np.testing.assert_allclose(agent.act(observation, explore=False, is_first=first),
                               fresh.act(observation, explore=False, is_first=first),
                               atol=1e-6)  # fmt: skip


def _train(python, env, run_dir, *args, timeout=300):
    command = [python, str(ROOT / "launchers" / "train.py"), "--agent=lambda", "--config=debug",
               "--env=sgym_SafetyPointGoal1-v0", "--safety", "--episode_length=50",
               "--eval_every=0", "--noprogress", f"--run_dir={run_dir}",
               "--config.train_every=20", *args]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout)


@pytest.mark.parametrize("observation", ["vector", "pixels"])
def test_launcher_smoke_run_and_resume(python, subprocess_env, tmp_path, observation):
    run_dir = tmp_path / observation
    result = _train(python, subprocess_env, run_dir, f"--observation={observation}",
                    "--total_steps=150", "--checkpoint_every=150")  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert any("model/kl" in row and "behavior/actor_loss" in row for row in rows)
    assert json.loads((run_dir / "config.json").read_text())["agent_config"]["observation"] == (
        observation
    )
    if observation == "vector":  # Resume once (the pixel path restores the same way).
        result = _train(python, subprocess_env, run_dir, "--observation=vector",
                        "--total_steps=250", "--checkpoint_every=150")  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["env_steps"] == 250


def test_mixed_precision_updates_are_finite_and_the_policy_is_left_as_it_was():
    import keras

    agent = filled_agent(jit=False, mixed_precision=True)
    assert agent.behavior.actor.hidden_0.compute_dtype == "bfloat16"
    assert keras.mixed_precision.dtype_policy().name == "float32"
    metrics = agent.train_batch(agent._sample_batch())
    assert all(np.isfinite(float(v)) for v in metrics.values())
    action = agent.act(np.zeros((1, 5), np.float32), explore=False, is_first=np.ones(1, bool))
    assert action.dtype == np.float32 and np.all(np.abs(action) <= 2)


@pytest.mark.parametrize(
    "pixels, gpu, overrides, model_xla",
    [
        (True, False, {}, False),  # CPU pixels: graph mode's oneDNN convolutions.
        (True, False, {"xla_cpu_convolutions": True}, True),
        (True, True, {}, True),
        (False, False, {}, True),  # Vectors: no convolutions, XLA everywhere.
        (True, True, {"jit": False}, False),  # jit=False turns every step off.
        (False, False, {"jit": False}, False),
    ],
)
def test_the_pixel_model_update_uses_xla_only_with_a_gpu_unless_asked(
    monkeypatch, pixels, gpu, overrides, model_xla
):
    # Pretend the machine has (or lacks) a GPU, so that every row runs on every host.
    real = tf.config.list_physical_devices
    fake_gpu = tf.config.PhysicalDevice("/physical_device:GPU:0", "GPU")
    monkeypatch.setattr(tf.config, "list_physical_devices",
                        lambda kind=None: ([fake_gpu] if gpu else []) if kind == "GPU"
                        else real(kind))  # fmt: skip
    images = spaces.Box(0, 255, (64, 64, 3), np.uint8)
    space = images if pixels else OBSERVATION
    config = debug_config(observation="pixels" if pixels else "vector", **overrides)
    agent = LambdaAgent(space, ACTION, config)
    assert agent.model_jit is model_xla
    # The compiled functions themselves, not only the attribute.
    assert agent._model_step._jit_compile is model_xla
    jit = overrides.get("jit", True)
    assert agent._behavior_step._jit_compile is jit and agent._policy_step._jit_compile is jit


# The `hazard` preset: small networks for an 8,000-step run and a limit of 2 per
# episode, with the agent's shipped penalty settings.
@pytest.mark.slow
def test_lambda_return_rises_while_the_cost_stays_under_its_limit(tmp_path):
    """On saferl_PointHazard-v0 (a hazard disc on the straight path to the goal;
    driving through costs about 4 per episode) with a limit of 2 per episode,
    seeds 0 and 1: 8,000 steps each, about 10 minutes each on 2 cores."""
    from saferl_tf.analysis.results import read_scalars
    from saferl_tf.training.experiment import RunSettings, train

    cost_limit = build_config(LambdaAgent.Config, ["lambda"], "hazard").cost_limit
    early, late = [], []
    for seed in (0, 1):
        settings = RunSettings(
            env="saferl_PointHazard-v0", agent="lambda", config="hazard", seed=seed,
            results_dir=str(tmp_path), safety=True, total_steps=8000, eval_every=1000,
            eval_episodes=3, checkpoint_every=100000, progress=False, jit=True,
        )  # fmt: skip
        train(settings)
        scalars = read_scalars(tmp_path / "lambda" / "saferl_PointHazard-v0" / str(seed))
        steps, returns = scalars["eval/episode_return"]
        _, costs = scalars["eval/episode_cost"]
        # Under the limit at every evaluation after the first rounds of updates,
        # and on average while learning after the random warm-up.
        assert np.all(costs[steps >= 2000] <= cost_limit), (seed, returns, costs)
        train_steps, train_costs = scalars["train/episode_cost"]
        assert train_costs[train_steps > 1000].mean() <= cost_limit, seed
        early.append(returns[steps <= 2000].mean())
        late.append(returns[-3:].mean())
    # The return rises: a random policy scores about -20 to -25 and its episode
    # returns vary by about +-3.
    assert np.mean(late) > np.mean(early) + 3.0, (early, late)
    assert np.mean(late) > -18.0, late


def test_the_seed_decides_the_initial_weights():
    def weights(seed):
        return _network_weights(LambdaAgent(OBSERVATION, ACTION, debug_config(), seed=seed))

    first, again, other = weights(3), weights(3), weights(4)
    assert first.keys() == again.keys() == other.keys()
    for name in first:
        np.testing.assert_array_equal(first[name], again[name], err_msg=name)
    assert any(not np.array_equal(first[n], other[n]) for n in first if "kernel" in n)


class FixedMultiplier(ConstraintPenalty):
    """A fixed lambda: the penalty lambda * g, never updated."""

    def __init__(self, value=0.5):
        super().__init__(name="fixed")
        self.multiplier = tf.Variable(value, trainable=False)

    def __call__(self, constraint):
        return self.multiplier * constraint

    def update(self, constraint):
        pass

    def metrics(self):
        return {"multiplier": self.multiplier}


class FixedMultiplierLambda(LambdaAgent):
    @staticmethod
    def make_penalty(config):
        return FixedMultiplier()


def test_a_subclass_swaps_the_penalty_for_a_fixed_multiplier():
    agent = filled_agent(cls=FixedMultiplierLambda, jit=False)
    metrics = {k: float(v) for k, v in agent.train_batch(agent._sample_batch()).items()}
    assert metrics["lagrangian/multiplier"] == 0.5
    assert metrics["behavior/penalty_psi"] == pytest.approx(0.5 * metrics["behavior/constraint"])


def test_the_pid_penalty_is_a_config_switch():
    agent = filled_agent(jit=False, penalty="pid")
    metrics = {k: float(v) for k, v in agent.train_batch(agent._sample_batch()).items()}
    assert {"lagrangian/integral", "lagrangian/derivative"} <= set(metrics)
    assert "lagrangian/penalty" not in metrics
    assert metrics["lagrangian/multiplier"] >= 0.0


def test_an_unknown_penalty_is_a_one_line_config_error():
    from saferl_tf.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown constraint penalty 'cbf'.*pid"):
        LambdaAgent(OBSERVATION, ACTION, debug_config(penalty="cbf"))


def _numpy_lambda_returns(rewards, next_values, continues, discount, lambda_):
    """Forward-ordered TD(lambda) targets in float64, one loop per trajectory."""
    returns = np.zeros_like(rewards, np.float64)
    following = next_values[..., -1].astype(np.float64)
    for t in reversed(range(rewards.shape[-1])):
        following = rewards[..., t] + discount * continues[..., t] * (
            (1 - lambda_) * next_values[..., t] + lambda_ * following
        )
        returns[..., t] = following
    return returns


class OneSampleFixedNoise(LambdaAgent):
    behavior_class = FixedNoise


def test_the_constraint_averages_the_cost_value_over_every_start_and_position():
    """g = mean over all N start states and H imagined positions of the cost
    lambda-returns, minus the discounted limit, against a float64 reference."""
    agent = filled_agent(cls=OneSampleFixedNoise, jit=False, posterior_samples=1)
    _, start = agent._model_step(agent._sample_batch(), tf.constant([1, 2]))
    # No SWAG snapshot yet: the one sample is the current weights.
    weights = agent.world_model.posterior_variables()
    imagined = agent.behavior.imagine(agent.world_model, start,
                                      [tf.identity(w) for w in weights], None)  # fmt: skip
    cost_values = scalar_output(agent.behavior.safety_critic, imagined["features"]).numpy()
    config = agent.config
    reference = _numpy_lambda_returns(imagined["cost"].numpy(), cost_values[:, 1:],
                                      imagined["continue"].numpy(), config.safety_discount,
                                      config.safety_lambda)  # fmt: skip
    metrics = agent._behavior_step(start, tf.constant([3, 4]))
    expected = reference.mean() - agent.behavior.discounted_cost_limit
    assert float(metrics["behavior/constraint"]) == pytest.approx(expected, rel=1e-4, abs=1e-5)
    # Not the start position alone (what an earlier version used).
    assert abs(reference[:, 0].mean() - reference.mean()) > 1e-3
