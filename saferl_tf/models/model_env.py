"""A model environment: roll policies or action sequences through a dynamics ensemble.

``ModelEnv`` steps thousands of particles at once through a
``DynamicsEnsemble``. Reward, cost and termination come from known
functions (``TaskFunctions``, for example the environment's own) where given,
otherwise from the model's learned outputs; one of the two must exist for
reward and cost. Once a particle terminates, its later rewards and costs are
zero.

Call sequence::

    model_env = ModelEnv(dynamics, task=envs.task_functions(env_id), propagation="fixed")
    rollout = model_env.rollout_actions(start [P, O], actions [P, H, A], seed [2])
    rollout = model_env.rollout_policy(start [P, O], policy, horizon, seed [2])
    rollout.observations  # [P, H + 1, O]; rewards, costs, alive: [P, H]

Both rollouts are pure TensorFlow (``tf.while`` over the horizon), so they run
inside an agent's compiled step; ``compiled_rollout_actions`` is a ready
XLA-compiled entry point, traced once per shape.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import tensorflow as tf

from saferl_tf.envs.registry import TaskFunctions
from saferl_tf.errors import ConfigError
from saferl_tf.models.dynamics import DynamicsEnsemble, require_signals, step_signals
from saferl_tf.models.ensemble import PROPAGATION_MODES


class Rollout(NamedTuple):
    """Imagined trajectories of P particles over H steps (a tf.nest structure)."""

    observations: tf.Tensor  # [P, H + 1, O]
    actions: tf.Tensor  # [P, H, A]
    rewards: tf.Tensor  # [P, H]
    costs: tf.Tensor  # [P, H]
    alive: tf.Tensor  # [P, H]: 1 where the step happened before any termination


class ModelEnv:
    """Rolls particles through a dynamics ensemble.

    Args:
      dynamics: the learned model.
      task: known reward/cost/termination functions; a function that is
        None there must be learned by ``dynamics``.
      propagation: 'fixed' (TS-∞), 'random' (TS-1) or 'expectation'.
      sample: add the members' aleatoric noise at every step.
      jit: compile ``compiled_rollout_actions`` with XLA.
    """

    def __init__(
        self,
        dynamics: DynamicsEnsemble,
        task: TaskFunctions | None = None,
        propagation: str = "fixed",
        sample: bool = True,
        jit: bool = True,
    ):
        if propagation not in PROPAGATION_MODES:
            raise ConfigError(
                f"unknown propagation {propagation!r}; accepted: {', '.join(PROPAGATION_MODES)}"
            )
        require_signals(dynamics, task, "the model environment")
        self.dynamics = dynamics
        self.task = task
        self.propagation = propagation
        self.sample = sample
        self.compiled_rollout_actions = tf.function(self.rollout_actions, jit_compile=jit)

    def step(self, observation, action, seed):
        """observation [P, O], action [P, A] -> next observation [P, O], reward,
        cost and terminal [P] (terminal in {0, 1})."""
        prediction = self.dynamics.step(observation, action, self.propagation, seed, self.sample)
        reward, cost, terminal = step_signals(self.task, observation, action, prediction)
        if terminal is None:
            terminal = tf.zeros_like(reward)
        return prediction.next_observation, reward, cost, terminal

    def _rollout(self, start, horizon: int, choose_action: Callable, seed) -> Rollout:
        seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int32), horizon)
        particles = tf.shape(start)[0]

        def body(t, observation, alive, observations, actions, rewards, costs, alives):
            action = choose_action(t, observation)
            following, reward, cost, terminal = self.step(observation, action, seeds[t])
            observations = observations.write(t + 1, following)
            actions = actions.write(t, action)
            rewards = rewards.write(t, reward * alive)
            costs = costs.write(t, cost * alive)
            alives = alives.write(t, alive)
            return (
                t + 1,
                following,
                alive * (1.0 - terminal),
                observations,
                actions,
                rewards,
                costs,
                alives,
            )

        start = tf.cast(start, tf.float32)
        arrays = [tf.TensorArray(tf.float32, size=horizon + 1).write(0, start)]
        arrays += [tf.TensorArray(tf.float32, size=horizon) for _ in range(4)]
        _, _, _, observations, actions, rewards, costs, alives = tf.while_loop(
            lambda t, *_: t < horizon,
            body,
            [tf.constant(0), start, tf.ones([particles]), *arrays],
        )

        def stacked(array, rank):
            return tf.transpose(array.stack(), [1, 0, *range(2, rank)])

        return Rollout(
            stacked(observations, 3),
            stacked(actions, 3),
            stacked(rewards, 2),
            stacked(costs, 2),
            stacked(alives, 2),
        )

    def rollout_actions(self, start, actions, seed) -> Rollout:
        """start [P, O], actions [P, H, A] (H static), seed [2] int32."""
        horizon = actions.shape[1]
        return self._rollout(start, horizon, lambda t, _: actions[:, t], seed)

    def rollout_policy(self, start, policy: Callable, horizon: int, seed) -> Rollout:
        """start [P, O]; ``policy(observation [P, O]) -> action [P, A]``; seed [2] int32."""
        return self._rollout(start, horizon, lambda _, observation: policy(observation), seed)
