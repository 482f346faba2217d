"""ModelEnv's disagreement measure, uncertainty-budget truncation and sampling,
on a synthetic ensemble whose disagreement is known in closed form."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from saferl_tf import envs
from saferl_tf.errors import ConfigError
from saferl_tf.models.dynamics import StepPrediction
from saferl_tf.models.model_env import ModelEnv


class _SpreadEnsemble:
    """K members; member i predicts the change [0, i * s] (s = the particle's
    first observation entry, which never changes) and a reward of 1, all with
    variance ``variance``. Per step the mean pairwise KL, averaged over the two
    observation dimensions, is s^2 * mean_{i != j} (i - j)^2 / (4 variance)."""

    def __init__(self, members=3, variance=1.0):
        self.members = members
        self.elite_indices = tf.range(members)
        self.variance = variance

    def member_moments(self, inputs, members):
        s = inputs[:, 0]
        offsets = tf.cast(tf.range(self.members), tf.float32)[:, None] * s[None]  # [K, P]
        mean = tf.stack([tf.zeros_like(offsets), offsets, tf.ones_like(offsets)], -1)
        return mean, tf.fill(tf.shape(mean), self.variance)


class _SpreadDynamics:
    observation_size = 2
    learned = ("reward",)

    def __init__(self, **kwargs):
        self.ensemble = _SpreadEnsemble(**kwargs)

    def inputs(self, observation, action):
        return tf.concat([observation, action], -1)

    def split(self, observation, outputs):
        return StepPrediction(observation + outputs[:, :2], reward=outputs[:, 2])


ZERO_COST = envs.TaskFunctions(reward=None, cost=lambda o, a, n: tf.zeros_like(o[..., 0]))


def _expected_kl(s, members=3, variance=1.0):
    pairs = [(i - j) ** 2 for i in range(members) for j in range(members) if i != j]
    return s**2 * np.mean(pairs) / (4 * variance)


def test_paths_end_before_the_step_that_reaches_the_uncertainty_budget():
    model_env = ModelEnv(_SpreadDynamics(), ZERO_COST, propagation="random", sample=False,
                         measure_disagreement=True)  # fmt: skip
    spreads = np.array([0.5, 1.0, 2.0, 0.0], np.float32)
    start = np.stack([spreads, np.zeros(4, np.float32)], 1)
    budget = 1.0
    rollout = model_env.rollout_policy(tf.constant(start), lambda o, seed: tf.zeros([4, 1]), 10,
                                       tf.constant([1, 2]), uncertainty_budget=budget)  # fmt: skip
    kl = _expected_kl(spreads)  # 0.125, 0.5, 2, 0 per step.
    np.testing.assert_allclose(rollout.disagreement.numpy(), np.tile(kl[:, None], 10), rtol=1e-6)
    # Step t is kept while (t + 1) * kl < budget: 7, 1, 0 and all 10 steps.
    lengths = [int(next((t for t in range(10) if (t + 1) * k >= budget), 10)) for k in kl]
    assert lengths == [7, 1, 0, 10]
    np.testing.assert_array_equal(rollout.alive.numpy().sum(1), lengths)
    np.testing.assert_array_equal(rollout.rewards.numpy().sum(1), lengths)  # Reward 1 per step.
    assert not rollout.terminated.numpy().any()


def test_without_a_budget_disagreement_is_measured_but_paths_run_on():
    model_env = ModelEnv(_SpreadDynamics(), ZERO_COST, propagation="fixed", sample=False,
                         measure_disagreement=True)  # fmt: skip
    start = tf.constant([[2.0, 0.0]] * 3)
    rollout = model_env.rollout_policy(
        start, lambda o, seed: tf.zeros([3, 1]), 4, tf.constant([0, 0])
    )
    assert rollout.alive.numpy().all()
    # 'fixed' propagation (TS-∞): each particle follows one elite i for the whole
    # rollout, moving i * s per step; the elites are dealt out at random per rollout.
    final = rollout.observations.numpy()[:, -1, 1]
    np.testing.assert_allclose(sorted(final), [0.0, 8.0, 16.0])
    steps = np.arange(5) / 4.0
    np.testing.assert_allclose(rollout.observations.numpy()[:, :, 1], final[:, None] * steps)
    finals = {tuple(model_env.rollout_policy(start, lambda o, seed: tf.zeros([3, 1]), 4,
                                             tf.constant([seed, 0])).observations.numpy()[:, -1, 1])
              for seed in range(8)}  # fmt: skip
    assert len(finals) > 1  # A fresh assignment per rollout.
    with pytest.raises(ConfigError, match="measure_disagreement"):
        ModelEnv(_SpreadDynamics(), ZERO_COST).rollout_policy(
            start, lambda o, seed: tf.zeros([3, 1]), 4, tf.constant([0, 0]), uncertainty_budget=1.0
        )


def test_sampling_adds_the_members_noise_not_one_standard_deviation():
    """The seed's model environment added std (no noise) in its sampling branch;
    here a sample is mean + std * N(0, 1)."""
    variance = 0.25
    dynamics = _SpreadDynamics(members=1, variance=variance)
    start = tf.zeros([20000, 2])
    means = {}
    for sample in (False, True):
        model_env = ModelEnv(dynamics, ZERO_COST, propagation="random", sample=sample,
                             measure_disagreement=True)  # fmt: skip
        result = model_env.step(start, tf.zeros([20000, 1]), tf.constant([4, 5]))
        means[sample] = result.next_observation.numpy()
    np.testing.assert_array_equal(means[False], 0.0)
    change = means[True]
    assert abs(change.mean()) < 0.02 and abs(change.std() - np.sqrt(variance)) < 0.02
