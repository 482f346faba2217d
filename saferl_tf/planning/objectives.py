"""Planning objectives on hallucinated trajectories of a dynamics ensemble.

A hallucinated trajectory moves with the ensemble's mean and an epistemic
push chosen by a hallucinated control η ∈ [−1, 1]^O::

    s̃ₜ₊₁ = μ(s̃ₜ, aₜ) + α · σ_epistemic(s̃ₜ, aₜ) · ηₜ

η = 0 is the model's own (mean) trajectory. ``TrajectoryModel.rollout``
scores N action sequences from one start state; the safe planners combine
the results as

    J = penalty · barrier(Σₜ costₜ − cost_limit) − (1/H) Σₜ rewardₜ

with the costs taken along a pessimistic trajectory and the rewards along the
model's own (or an optimistic) one. Shapes: start [O], actions [N, H, A],
eta [N, H, O]; rewards and costs [N, H].

Sampled trajectories (``sampled``) follow the moment-matched Gaussian of the
ensemble instead, s̃ₜ₊₁ = μ + sqrt(σ²_epistemic + σ²_aleatoric) · zₜ, with
the standard normal draws z [P, H, O] of P particles shared by every
candidate plan (common random numbers, as SafeExploration's planners).
"""

from __future__ import annotations

import tensorflow as tf

from saferl_tf.envs.registry import TaskFunctions
from saferl_tf.errors import ConfigError
from saferl_tf.models.dynamics import DynamicsEnsemble, require_signals
from saferl_tf.models.model_env import ModelEnv

BARRIERS = ("relu", "huber", "quadratic", "exponential")


def barrier(excess: tf.Tensor, kind: str = "relu") -> tf.Tensor:
    """Penalty of a constraint's excess (Σ cost − limit); zero at or below 0.

    'relu': max(x, 0); 'huber': ½x² up to 1, then x − ½; 'quadratic':
    max(x, 0)²; 'exponential': exp(max(x, 0)) − 1 (capped at exp(30)).
    """
    positive = tf.nn.relu(excess)
    if kind == "relu":
        return positive
    if kind == "huber":
        return tf.where(positive < 1.0, 0.5 * tf.square(positive), positive - 0.5)
    if kind == "quadratic":
        return tf.square(positive)
    if kind == "exponential":
        return tf.exp(tf.minimum(positive, 30.0)) - 1.0
    raise ConfigError(f"unknown barrier {kind!r}; accepted: {', '.join(BARRIERS)}")


class TrajectoryModel:
    """Deterministic (hallucinated) rollouts of a dynamics ensemble for planners:
    the planners' broadcasting over ``ModelEnv``, the package's one rollout
    engine (the elites' mean model, pushed along the epistemic std by η).

    Reward and cost come from ``task`` where it has them, otherwise from the
    dynamics' learned (mean) outputs.
    """

    def __init__(self, dynamics: DynamicsEnsemble, task: TaskFunctions | None = None,
                 cost_range=None, observation_bounds=None):  # fmt: skip
        require_signals(dynamics, task, "planning")
        self.dynamics = dynamics
        self.task = task
        limits = dict(cost_range=cost_range, observation_bounds=observation_bounds)
        self.model_env = ModelEnv(dynamics, task, propagation="expectation", sample=False,
                                  jit=False, **limits)  # fmt: skip
        self.sampling_env = ModelEnv(dynamics, task, propagation="expectation", sample=False,
                                     push_std="total", jit=False, **limits)  # fmt: skip

    def rollout(self, start, actions, eta=None, alpha=1.0):
        """Rewards and costs [N, H] of N sequences from one start state [O].

        ``eta`` None follows the mean model; otherwise each step adds
        alpha · σ_epistemic · η, and a learned cost is pessimistic: its mean
        plus alpha times its own epistemic std. ``actions`` [Na, H, A] and
        ``eta`` [Ne, H, O] broadcast (Na or Ne may be 1). Steps after a
        predicted or known termination count nothing.
        """
        count = actions.shape[0] if eta is None else max(actions.shape[0], eta.shape[0])
        actions = tf.broadcast_to(actions, [count, *actions.shape[1:]])
        push = None
        if eta is not None:
            push = alpha * tf.broadcast_to(tf.cast(eta, tf.float32), [count, *eta.shape[1:]])
        start = tf.cast(start, tf.float32)
        observation = tf.broadcast_to(start, [count, start.shape[-1]])
        # The mean model draws no random numbers: any seed will do.
        rollout = self.model_env.rollout_actions(observation, actions, tf.zeros([2], tf.int32),
                                                 push, None if push is None else alpha)  # fmt: skip
        return rollout.rewards, rollout.costs

    def reward_and_cost(self, start, reward_actions, reward_eta, cost_actions, cost_eta, alpha):
        """Rewards [Nr, H] along one set of trajectories and costs [Nc, H] along
        another, rolled out together in one loop (half the loop steps of two
        ``rollout`` calls; the same arithmetic).

        ``reward_eta`` / ``cost_eta`` None follow the mean model. Within each
        set, actions and η broadcast as in ``rollout``.
        """

        def expand(actions, eta):
            count = actions.shape[0] if eta is None else max(actions.shape[0], eta.shape[0])
            actions = tf.broadcast_to(actions, [count, *actions.shape[1:]])
            shape = [count, actions.shape[1], self.dynamics.observation_size]
            eta = (
                tf.zeros(shape) if eta is None else tf.broadcast_to(tf.cast(eta, tf.float32), shape)
            )
            return actions, eta

        reward_actions, reward_eta = expand(reward_actions, reward_eta)
        cost_actions, cost_eta = expand(cost_actions, cost_eta)
        split = reward_actions.shape[0]
        rewards, costs = self.rollout(
            start,
            tf.concat([reward_actions, cost_actions], 0),
            tf.concat([reward_eta, cost_eta], 0),
            alpha,
        )
        return rewards[:split], costs[split:]

    def pair_costs(self, start, actions, eta, alpha):
        """Summed costs [N, M] of every (action sequence, η) pair: actions
        [N, H, A], eta [M, H, O], each pair pushed by alpha · σ_epistemic · η."""
        count, pairs = actions.shape[0], eta.shape[0]
        tiled_actions = tf.repeat(actions, pairs, axis=0)  # Pair (i, j) at row i·M + j.
        tiled_eta = tf.tile(tf.cast(eta, tf.float32), [count, 1, 1])
        _, costs = self.rollout(start, tiled_actions, tiled_eta, alpha)
        return tf.reshape(tf.reduce_sum(costs, axis=1), [count, pairs])

    def sampled(self, start, actions, noise):
        """Rewards and costs [N, P, H] of N sequences [N, H, A] along P sampled
        trajectories each; noise [P, H, O] standard normal, the same for every
        sequence."""
        count, particles = actions.shape[0], noise.shape[0]
        tiled_actions = tf.repeat(actions, particles, axis=0)  # Row i·P + p.
        tiled_noise = tf.tile(tf.cast(noise, tf.float32), [count, 1, 1])
        start = tf.cast(start, tf.float32)
        observation = tf.broadcast_to(start, [count * particles, start.shape[-1]])
        no_seed = tf.zeros([2], tf.int32)  # The noise is given: the model draws nothing.
        rollout = self.sampling_env.rollout_actions(observation, tiled_actions, no_seed,
                                                    tiled_noise)  # fmt: skip
        shape = [count, particles, actions.shape[1]]
        return tf.reshape(rollout.rewards, shape), tf.reshape(rollout.costs, shape)
