"""SAC's targets and losses against NumPy (float64) on small random batches."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from saferl_tf.rl.sac import (
    actor_loss,
    critic_targets,
    soft_update,
    temperature_loss,
    twin_critic_loss,
)


def _batch(seed=0, size=7):
    rng = np.random.default_rng(seed)
    return {name: rng.normal(size=size) for name in
            ("reward", "q1", "q2", "next_q1", "next_q2", "log_prob", "next_log_prob")}  # fmt: skip


def test_critic_targets_take_the_smaller_target_and_stop_at_terminals():
    b = _batch()
    continues = np.array([1, 1, 0, 1, 0, 1, 1], np.float64)
    alpha, gamma = 0.2, 0.99
    ours = critic_targets(b["reward"], continues, b["next_q1"], b["next_q2"], b["next_log_prob"],
                          alpha, gamma).numpy()  # fmt: skip
    expected = np.empty(7)
    for i in range(7):  # One transition at a time, in plain Python.
        soft = min(b["next_q1"][i], b["next_q2"][i]) - alpha * b["next_log_prob"][i]
        expected[i] = b["reward"][i] + gamma * continues[i] * soft
    np.testing.assert_allclose(ours, expected, rtol=1e-12)
    np.testing.assert_allclose(ours[continues == 0], b["reward"][continues == 0])


def test_the_losses_match_numpy_and_pass_gradients_where_they_should():
    b = _batch(1)
    targets = np.random.default_rng(2).normal(size=7)
    q1, q2 = tf.Variable(b["q1"]), tf.Variable(b["q2"])
    with tf.GradientTape() as tape:
        loss = twin_critic_loss(q1, q2, tf.constant(targets))
    expected = 0.5 * np.mean((b["q1"] - targets) ** 2) + 0.5 * np.mean((b["q2"] - targets) ** 2)
    assert np.isclose(loss.numpy(), expected, rtol=1e-12)
    np.testing.assert_allclose(tape.gradient(loss, q1).numpy(), (b["q1"] - targets) / 7)

    log_prob, alpha = tf.Variable(b["log_prob"]), tf.Variable(0.3, dtype=tf.float64)
    with tf.GradientTape(persistent=True) as tape:
        loss = actor_loss(tf.constant(b["q1"]), tf.constant(b["q2"]), log_prob, alpha)
    assert np.isclose(loss.numpy(), np.mean(0.3 * b["log_prob"] - np.minimum(b["q1"], b["q2"])))
    assert tape.gradient(loss, alpha) is None  # The actor does not move alpha.
    np.testing.assert_allclose(tape.gradient(loss, log_prob).numpy(), np.full(7, 0.3 / 7))


def test_the_temperature_rises_while_the_entropy_is_below_its_target():
    target_entropy = -2.0
    log_alpha = tf.Variable(np.log(0.1))
    low_entropy = tf.constant(np.full(5, 3.0))  # log pi = 3: entropy -3 < -2.
    with tf.GradientTape() as tape:
        loss = temperature_loss(log_alpha, low_entropy, target_entropy)
    assert np.isclose(loss.numpy(), -np.log(0.1) * (3.0 - 2.0))
    assert tape.gradient(loss, log_alpha).numpy() < 0  # Descent raises log alpha.
    with tf.GradientTape() as tape:
        loss = temperature_loss(log_alpha, tf.constant(np.full(5, 1.0)), target_entropy)
    assert tape.gradient(loss, log_alpha).numpy() > 0


def test_soft_update_moves_targets_by_tau():
    target, source = tf.Variable([0.0, 10.0]), tf.Variable([1.0, 0.0])
    soft_update([target], [source], 0.005)
    np.testing.assert_allclose(target.numpy(), [0.005, 9.95], rtol=1e-6)


def _learner(**kwargs):
    from saferl_tf.rl.sac import SACLearner

    keras.utils.set_random_seed(0)
    return SACLearner(3, 2, hidden_units=8, hidden_layers=2, **kwargs)


def _transitions(size=16, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "observation": tf.constant(rng.normal(size=(size, 3)), tf.float32),
        "action": tf.constant(rng.uniform(-1, 1, (size, 2)), tf.float32),
        "reward": tf.constant(rng.normal(size=size), tf.float32),
        "cost": tf.constant(rng.uniform(0, 1, size), tf.float32),
        "next_observation": tf.constant(rng.normal(size=(size, 3)), tf.float32),
        "terminated": tf.constant(rng.uniform(size=size) < 0.3, tf.float32),
    }


def _forward(network, inputs):
    """A FeatureMLP's output in NumPy from its weights (ReLU, unit-norm features)."""
    weights = [w.numpy().astype(np.float64) for w in network.weights]
    hidden = inputs.astype(np.float64)
    for kernel, bias in zip(weights[0:-2:2], weights[1:-2:2]):
        hidden = np.maximum(hidden @ kernel + bias, 0.0)
    hidden = hidden / np.maximum(np.linalg.norm(hidden, axis=-1, keepdims=True), 1e-12)
    return hidden @ weights[-2] + weights[-1]


def test_the_learners_critic_target_matches_numpy_on_tiny_networks():
    learner = _learner()
    batch = _transitions()
    seed = tf.constant([3, 4])
    ours, _ = learner.targets(batch, seed)
    # The same next actions (same seed), then the targets from the weights in NumPy.
    next_action, next_log_prob = learner.sample(batch["next_observation"], seed)
    pair = np.concatenate([batch["next_observation"].numpy(), next_action.numpy()], -1)
    q1 = _forward(learner.target_critic_1, pair)[:, 0]
    q2 = _forward(learner.target_critic_2, pair)[:, 0]
    alpha = np.exp(learner.log_alpha.numpy())
    expected = batch["reward"].numpy() + 0.99 * (1 - batch["terminated"].numpy()) * (
        np.minimum(q1, q2) - alpha * next_log_prob.numpy()
    )
    np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-4, atol=1e-5)


def test_sampled_log_probabilities_are_the_squashed_gaussians():
    learner = _learner()
    observation = tf.constant(np.random.default_rng(1).normal(size=(4, 3)), tf.float32)
    action, log_prob = learner.sample(observation, tf.constant([1, 2]))
    mean, log_std = learner._mean_and_log_std(observation)
    base = tfp.distributions.Normal(mean, tf.exp(log_std))
    squashed = tfp.distributions.TransformedDistribution(base, tfp.bijectors.Tanh())
    reference = tf.reduce_sum(squashed.log_prob(tf.clip_by_value(action, -0.999999, 0.999999)), -1)
    np.testing.assert_allclose(log_prob.numpy(), reference.numpy(), rtol=1e-3, atol=1e-3)
    assert np.all(np.abs(action.numpy()) <= 1.0)


def test_the_learners_temperature_follows_adam_on_the_numpy_gradient():
    """Three updates of log α against NumPy (float64): the gradient of
    -E[log α (log π + H)] is -E[log π + H] with log π of the actor before its
    update, fed to Adam (Keras 3: β 0.9, 0.999, ε 1e-7)."""
    target_entropy = 0.7
    learner = _learner(target_entropy=target_entropy)
    log_alpha = float(learner.log_alpha.numpy())
    m = v = 0.0
    for step in range(1, 4):
        batch, seed = _transitions(seed=step), tf.constant([step, 7])
        actor_seed = tf.random.experimental.stateless_split(seed, 2)[1]
        _, log_prob = learner.sample(batch["observation"], actor_seed)
        gradient = -np.mean(log_prob.numpy().astype(np.float64) + target_entropy)
        learner.train(batch, seed)
        m = 0.9 * m + 0.1 * gradient
        v = 0.999 * v + 0.001 * gradient**2
        rate = 3e-4 * np.sqrt(1 - 0.999**step) / (1 - 0.9**step)
        log_alpha -= rate * m / (np.sqrt(v) + 1e-7)
        assert float(learner.log_alpha.numpy()) == pytest.approx(log_alpha, abs=1e-6)


def test_one_update_moves_the_temperature_towards_the_target_entropy_and_traces_once():
    learner = _learner(target_entropy=10.0)  # Far above any entropy here: alpha must rise.
    step = tf.function(learner.train, jit_compile=True)
    before = float(learner.log_alpha.numpy())
    initial = [v.numpy().copy() for v in learner.target_critic_1.variables]
    for index in range(3):
        metrics = step(_transitions(seed=index), tf.constant([index, 1]))
    assert all(np.isfinite(float(v)) for v in metrics.values())
    # Adam's first steps move by about the learning rate each, upwards.
    assert float(learner.log_alpha.numpy()) == pytest.approx(before + 3 * 3e-4, rel=0.05)
    assert step.experimental_get_tracing_count() == 1
    # The targets move by tau every 4th update: not after 3, then once.
    for target, value in zip(learner.target_critic_1.variables, initial):
        np.testing.assert_array_equal(target.numpy(), value)
    step(_transitions(seed=3), tf.constant([3, 1]))
    for target, value, source in zip(learner.target_critic_1.variables, initial,
                                     learner.critic_1.variables):  # fmt: skip
        np.testing.assert_allclose(target.numpy(), 0.995 * value + 0.005 * source.numpy(),
                                   rtol=1e-5, atol=1e-7)  # fmt: skip


def test_sac_lagrangian_adds_the_penalty_and_updates_the_multiplier():
    from saferl_tf.rl.lagrangian import make_penalty

    penalty = make_penalty("augmented_lagrangian", initial_multiplier=0.5, initial_penalty=0.01,
                           penalty_growth=0.0)  # fmt: skip
    learner = _learner(penalty=penalty, discounted_cost_limit=-1.0)  # Always violated.
    metrics = learner.train(_transitions(), tf.constant([0, 1]))
    g = float(metrics["sac/constraint"])
    assert g == pytest.approx(float(metrics["sac/cost_value"]) + 1.0, rel=1e-5)
    assert float(metrics["sac/penalty_psi"]) == pytest.approx(0.5 * g + 0.005 * g * g, rel=1e-4)
    assert float(penalty.multiplier.numpy()) == pytest.approx(0.5 + 0.01 * g, rel=1e-4)
