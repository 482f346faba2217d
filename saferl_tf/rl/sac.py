"""Soft actor-critic's losses and targets as pure TensorFlow functions
(Haarnoja et al. 2018, with twin critics and automatic entropy tuning).

Shapes: a batch of B transitions; every argument and result is [B] unless
said otherwise; ``alpha`` and the losses are scalars. The call sequence of one
update (``saferl_tf.agents`` compose these inside one compiled step)::

    next_action, next_log_prob = policy.sample(next_observation)
    targets = critic_targets(reward, continues, target_q1(next), target_q2(next),
                             next_log_prob, alpha, discount)          # no gradient
    critic_loss = twin_critic_loss(q1(o, a), q2(o, a), targets)
    new_action, log_prob = policy.sample(observation)                 # reparameterized
    policy_loss = actor_loss(q1(o, new_action), q2(o, new_action), log_prob, alpha)
    alpha_loss = temperature_loss(log_alpha, log_prob, target_entropy)
    soft_update(target_variables, variables, tau=0.005)

Checked against NumPy in ``tests/test_sac.py``.
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf


def critic_targets(reward, continues, next_q1, next_q2, next_log_prob, alpha, discount: float):
    """y = r + gamma c (min(Q1', Q2') - alpha log pi(a' | s')), without gradient."""
    soft_value = tf.minimum(next_q1, next_q2) - alpha * next_log_prob
    return tf.stop_gradient(reward + discount * continues * soft_value)


def twin_critic_loss(q1, q2, targets):
    """Both critics' mean squared errors, each halved as in the SAC paper, summed."""
    return 0.5 * tf.reduce_mean(tf.square(q1 - targets)) + 0.5 * tf.reduce_mean(
        tf.square(q2 - targets)
    )


def actor_loss(q1, q2, log_prob, alpha):
    """E[alpha log pi(a | s) - min(Q1, Q2)(s, a)] with a reparameterized a."""
    return tf.reduce_mean(tf.stop_gradient(alpha) * log_prob - tf.minimum(q1, q2))


def temperature_loss(log_alpha, log_prob, target_entropy: float):
    """-E[log alpha (log pi + H_target)]: alpha rises while the entropy is
    below its target."""
    return -tf.reduce_mean(log_alpha * tf.stop_gradient(log_prob + target_entropy))


def soft_update(targets: Sequence[tf.Variable], sources: Sequence[tf.Variable], tau: float):
    """theta_target <- (1 - tau) theta_target + tau theta."""
    for target, source in zip(targets, sources):
        target.assign((1.0 - tau) * target + tau * source)
