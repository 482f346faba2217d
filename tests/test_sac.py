"""SAC's targets and losses against NumPy (float64) on small random batches."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

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
