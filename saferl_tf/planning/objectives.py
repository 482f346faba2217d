"""Planning objectives on hallucinated trajectories of a dynamics ensemble.

A hallucinated trajectory moves with the ensemble's mean and an epistemic
push chosen by a hallucinated control η ∈ [−1, 1]^O::

    s̃ₜ₊₁ = μ(s̃ₜ, aₜ) + α · σ_epistemic(s̃ₜ, aₜ) · ηₜ

η = 0 is the model's own (mean) trajectory. ``TrajectoryModel.rollout``
scores N action sequences from each of B start states (B environments planned
together); the safe planners combine the results as

    J = penalty · barrier(Σₜ costₜ − cost_limit) − (1/H) Σₜ rewardₜ

with the costs taken along a pessimistic trajectory and the rewards along the
model's own (or an optimistic) one. Shapes: start [B, O], actions [B, N, H, A],
eta [B, N, H, O]; rewards and costs [B, N, H].

Sampled trajectories (``sampled``) follow the moment-matched Gaussian of the
ensemble instead, s̃ₜ₊₁ = μ + sqrt(σ²_epistemic + σ²_aleatoric) · zₜ, with
the standard normal draws z [B, P, H, O] of P particles shared by every
candidate plan of a start (common random numbers, as SafeExploration's planners).

Sums over the horizon of several such replicas of every sequence (η
opponents, reward particles) come from one rollout (``replica_sums``), which
the min-max and PesTraj objectives use: the replicas share the first model
step, and the loop keeps running sums only.
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

    def _rollout_rows(self, start, actions, push=None, cost_push=None):
        """start [B, O], actions [B, N, H, A], push [B, N, H, O] -> rewards,
        costs [B, N, H]: the B·N rows rolled out together, row (b, n) from start[b]."""
        batch, count = actions.shape[0], actions.shape[1]
        observation = tf.repeat(tf.cast(start, tf.float32), count, axis=0)  # Row b·N + n.
        flat_actions = tf.reshape(actions, [batch * count, *actions.shape[2:]])
        flat_push = None if push is None else tf.reshape(push, [batch * count, *push.shape[2:]])
        # The mean model draws no random numbers: any seed will do.
        rollout = self.model_env.rollout_actions(observation, flat_actions, tf.zeros([2], tf.int32),
                                      flat_push, cost_push)  # fmt: skip
        shape = [batch, count, actions.shape[2]]
        return tf.reshape(rollout.rewards, shape), tf.reshape(rollout.costs, shape)

    def _expand(self, actions, eta, zeros: bool = False):
        """actions [B, Na, H, A], eta [B, Ne, H, O] or None, broadcast to a
        common count N; ``zeros``: None becomes zeros."""
        batch, horizon = actions.shape[0], actions.shape[2]
        count = actions.shape[1] if eta is None else max(actions.shape[1], eta.shape[1])
        actions = tf.broadcast_to(actions, [batch, count, horizon, actions.shape[3]])
        shape = [batch, count, horizon, self.dynamics.observation_size]
        if eta is None:
            return actions, tf.zeros(shape) if zeros else None
        return actions, tf.broadcast_to(tf.cast(eta, tf.float32), shape)

    def rollout(self, start, actions, eta=None, alpha=1.0):
        """Rewards and costs [B, N, H] of N sequences from each of B start states
        [B, O].

        ``eta`` None follows the mean model; otherwise each step adds
        alpha · σ_epistemic · η, and a learned cost is pessimistic: its mean
        plus alpha times its own epistemic std. ``actions`` [B, Na, H, A] and
        ``eta`` [B, Ne, H, O] broadcast (Na or Ne may be 1). Steps after a
        predicted or known termination count nothing.
        """
        actions, eta = self._expand(actions, eta)
        if eta is None:
            return self._rollout_rows(start, actions)
        return self._rollout_rows(start, actions, alpha * eta, alpha)

    def reward_and_cost(self, start, reward_actions, reward_eta, cost_actions, cost_eta, alpha):
        """Rewards [B, Nr, H] along one set of trajectories and costs [B, Nc, H]
        along another, rolled out together in one loop (half the loop steps of
        two ``rollout`` calls; the same arithmetic).

        ``reward_eta`` / ``cost_eta`` None follow the mean model. Within each
        set, actions and η broadcast as in ``rollout``.
        """
        reward_actions, reward_eta = self._expand(reward_actions, reward_eta, zeros=True)
        cost_actions, cost_eta = self._expand(cost_actions, cost_eta, zeros=True)
        split = reward_actions.shape[1]
        rewards, costs = self.rollout(
            start,
            tf.concat([reward_actions, cost_actions], 1),
            tf.concat([reward_eta, cost_eta], 1),
            alpha,
        )
        return rewards[:, :split], costs[:, split:]

    def replica_sums(self, start, actions, groups):
        """Summed rewards and costs of replicas of each sequence, in one rollout.

        Args:
          start: [B, O]; actions: [B, N, H, A].
          groups: a list of (push [B, R, H, O], total, cost_push): R replicas
            of every sequence of a start, replica r pushed by push[b, r] (the
            same for every sequence: an opponent's η times α, or standard
            normal particle draws); ``total`` (bool): the push scales the
            total std (sampling the moment-matched Gaussian) rather than the
            epistemic one; ``cost_push`` (scalar): epistemic stds added to a
            learned cost.

        Returns:
          Per group, (reward sums, cost sums) [B, N, R]. All replicas of a
          sequence share its first model step (``ModelEnv.rollout_replicas``).
        """
        batch, count = actions.shape[0], actions.shape[1]
        pushes, totals, cost_pushes, sizes = [], [], [], []
        for push, total, cost_push in groups:
            size = push.shape[1]
            pushes.append(tf.cast(push, tf.float32))
            totals.append(tf.fill([size], 1.0 if total else 0.0))
            cost_pushes.append(tf.fill([size], tf.cast(cost_push, tf.float32)))
            sizes.append(size)
        push = tf.concat(pushes, 1)  # [B, R, H, O]
        row_push = tf.reshape(tf.broadcast_to(push[:, None], [batch, count, *push.shape[1:]]),
                              [batch * count, *push.shape[1:]])  # fmt: skip
        # Without a sampling group the forward pass skips the aleatoric half.
        total = tf.concat(totals, 0) if any(t for _, t, _ in groups) else None
        rewards, costs = self.model_env.rollout_replicas(
            tf.repeat(tf.cast(start, tf.float32), count, axis=0),  # Row b·N + n.
            tf.reshape(actions, [batch * count, *actions.shape[2:]]),
            row_push, total, tf.concat(cost_pushes, 0),
        )  # fmt: skip
        shape = [batch, count, -1]
        parts = zip(tf.split(tf.reshape(rewards, shape), sizes, axis=2),
                    tf.split(tf.reshape(costs, shape), sizes, axis=2))  # fmt: skip
        return list(parts)

    def pair_costs(self, start, actions, eta, alpha):
        """Summed costs [B, N, M] of every (action sequence, η) pair: actions
        [B, N, H, A], eta [B, M, H, O], each pair pushed by alpha · σ_epistemic · η."""
        ((_, costs),) = self.replica_sums(start, actions, [(alpha * eta, False, alpha)])
        return costs

    def sampled(self, start, actions, noise):
        """Summed rewards and costs [B, N, P] of N sequences [B, N, H, A] from
        each start [B, O] along P sampled trajectories each; noise [B, P, H, O]
        standard normal, the same for every sequence of a start."""
        ((rewards, costs),) = self.replica_sums(start, actions, [(noise, True, 0.0)])
        return rewards, costs
