"""The model environment: every model-based agent's one rollout engine.

``ModelEnv`` steps thousands of particles at once through a
``DynamicsEnsemble``. Reward, cost and termination come from known
functions (``TaskFunctions``, for example the environment's own) where given,
otherwise from the model's learned outputs; one of the two must exist for
reward and cost. Once a particle's path ends (a termination, or too much
model disagreement), its later steps count nothing.

Three uses share it:

- policy rollouts (MBPO-style, CMBPO): ``rollout_policy`` with PETS
  propagation (``propagation``, ``sample``), optionally measuring the members'
  disagreement (``measure_disagreement``: the mean pairwise KL of all members'
  Gaussians, ``ensemble.pairwise_kl``) and ending each path before the step
  whose accumulated disagreement would reach ``uncertainty_budget``;
- action-sequence rollouts (PETS, CEM): ``rollout_actions``;
- hallucinated rollouts (the pessimistic planner): ``rollout_actions`` with
  ``push`` [P, H, O], which follows the elites' mean plus push times the
  epistemic std at each step (``planning.objectives.TrajectoryModel`` adapts
  the planners' broadcasting to it). With ``push_std="total"`` the push
  scales the std of the moment-matched Gaussian instead, so a standard normal
  push samples it (SafeExploration's ``DIST`` propagation, with the noise
  chosen by the caller: common random numbers across candidate plans).

Call sequence::

    model_env = ModelEnv(dynamics, task=envs.task_functions(env_id), propagation="fixed")
    rollout = model_env.rollout_actions(start [P, O], actions [P, H, A], seed [2])
    rollout = model_env.rollout_policy(start [P, O], policy, horizon, seed [2])
    rollout.observations  # [P, H + 1, O]; rewards, costs, alive, terminated: [P, H]

All rollouts are pure TensorFlow (``tf.while`` over the horizon), so they run
inside an agent's compiled step; ``compiled_rollout_actions`` is a ready
XLA-compiled entry point, traced once per shape.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import NamedTuple

import tensorflow as tf

from saferl_tf.envs.registry import TaskFunctions
from saferl_tf.errors import ConfigError
from saferl_tf.models.dynamics import DynamicsEnsemble, require_signals, step_signals
from saferl_tf.models.ensemble import PROPAGATION_MODES, pairwise_kl, particle_assignment


class Rollout(NamedTuple):
    """Imagined trajectories of P particles over H steps (a tf.nest structure)."""

    observations: tf.Tensor  # [P, H + 1, O]; after a path ends, what the model went on with
    actions: tf.Tensor  # [P, H, A]
    rewards: tf.Tensor  # [P, H], zero after the path ended
    costs: tf.Tensor  # [P, H], zero after the path ended
    alive: tf.Tensor  # [P, H]: 1 where step t belongs to the path
    terminated: tf.Tensor  # [P, H]: 1 at the step whose transition terminated the path
    disagreement: tf.Tensor  # [P, H]: the members' KL at each step (0 unless measured)


class StepResult(NamedTuple):
    next_observation: tf.Tensor  # [P, O]
    reward: tf.Tensor  # [P]
    cost: tf.Tensor  # [P]
    terminal: tf.Tensor  # [P] in {0, 1}
    disagreement: tf.Tensor  # [P]; zeros unless measured


class ModelEnv:
    """Rolls particles through a dynamics ensemble.

    Args:
      dynamics: the learned model.
      task: known reward/cost/termination functions; a function that is
        None there must be learned by ``dynamics``.
      propagation: 'fixed' (TS-∞: each particle keeps one elite, drawn at
        random per rollout), 'random' (TS-1: a random elite per step) or
        'expectation' (the elites' mean).
      sample: add the chosen member's aleatoric noise at every step (False:
        its mean, as CMBPO's published code runs).
      measure_disagreement: compute every member's prediction at each step
        and their mean pairwise KL (``Rollout.disagreement``); the next
        observation is then taken from the same predictions.
      push_std: what a ``push`` scales: 'epistemic' (the spread of the
        members' means) or 'total' (with their aleatoric variance added).
      cost_range: [2] (a tensor or variable): a learned cost is clipped to
        [low, high] (None: not clipped).
      observation_bounds: (low [O], high [O]), infinite where unbounded:
        predicted observations are clipped to them (a lidar's [0, 1], which a
        hallucinated push would otherwise leave).
      jit: compile ``compiled_rollout_actions`` with XLA.
    """

    def __init__(
        self,
        dynamics: DynamicsEnsemble,
        task: TaskFunctions | None = None,
        propagation: str = "fixed",
        sample: bool = True,
        measure_disagreement: bool = False,
        push_std: str = "epistemic",
        cost_range=None,
        observation_bounds=None,
        jit: bool = True,
    ):
        if propagation not in PROPAGATION_MODES:
            raise ConfigError(
                f"unknown propagation {propagation!r}; accepted: {', '.join(PROPAGATION_MODES)}"
            )
        if push_std not in ("epistemic", "total"):
            raise ConfigError(f"unknown push_std {push_std!r}; accepted: epistemic, total")
        require_signals(dynamics, task, "the model environment")
        self.push_std = push_std
        self.cost_range = cost_range
        self.observation_bounds = None
        if observation_bounds is not None:
            low, high = (tf.constant(bound, tf.float32) for bound in observation_bounds)
            self.observation_bounds = (low, high)
        self.dynamics = dynamics
        self.task = task
        self.propagation = propagation
        self.sample = sample
        self.measure_disagreement = measure_disagreement
        self.compiled_rollout_actions = tf.function(self.rollout_actions, jit_compile=jit)

    def _predict(self, observation, action, seed, push=None, assignment=None, cost_push=None,
                 total=None, repeats: int = 1):  # fmt: skip
        """The model's step -> (StepPrediction, disagreement [P])."""
        particles = tf.shape(push if push is not None else observation)[0]
        if push is not None:  # Hallucinated: the elites' mean, pushed along the epistemic std.
            total = self.push_std == "total" if total is None else total
            prediction, std, extras = self.dynamics.expected_step_with_extras(
                observation, action, total, repeats)  # fmt: skip
            following = prediction.next_observation + push * std
            prediction = prediction.with_next_observation(following)
            if cost_push is not None and prediction.cost is not None:
                # A learned cost is pushed up along its own epistemic spread.
                prediction = dataclasses.replace(
                    prediction, cost=prediction.cost + cost_push * extras["cost"]
                )
            return prediction, tf.zeros([particles])
        if not self.measure_disagreement:
            prediction = self.dynamics.step(observation, action, self.propagation, seed,
                                            self.sample, assignment)  # fmt: skip
            return prediction, tf.zeros([particles])
        return self._predict_with_disagreement(observation, action, seed, assignment)

    def _predict_with_disagreement(self, observation, action, seed, assignment=None):
        ensemble = self.dynamics.ensemble
        mean, variance = ensemble.member_moments(
            self.dynamics.inputs(observation, action), tf.range(ensemble.members)
        )  # [E, P, D]
        size = self.dynamics.observation_size
        disagreement = pairwise_kl(mean[..., :size], variance[..., :size])
        choice_seed, noise_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        elites = ensemble.elite_indices
        count = tf.shape(elites)[0]
        particles = tf.shape(observation)[0]
        if self.propagation == "expectation":
            outputs = tf.reduce_mean(tf.gather(mean, elites), axis=0)
        else:
            if self.propagation == "random":
                slot = tf.random.stateless_uniform([particles], choice_seed, 0, count, tf.int32)
            elif assignment is not None:  # Particle i sits at position j: elite j mod K.
                slot = tf.math.invert_permutation(assignment)[:particles] % count
            else:
                slot = tf.range(particles) % count
            member = tf.gather(elites, slot)  # [P]
            rows = tf.stack([member, tf.range(particles)], -1)
            outputs = tf.gather_nd(mean, rows)
            if self.sample:  # The member's mean plus its own noise (std times a normal draw).
                std = tf.sqrt(tf.gather_nd(variance, rows))
                outputs += std * tf.random.stateless_normal(tf.shape(outputs), noise_seed)
        return self.dynamics.split(observation, outputs), disagreement

    def step(self, observation, action, seed, push=None, assignment=None,
             cost_push=None, total=None, repeats: int = 1) -> StepResult:  # fmt: skip
        """observation [P, O], action [P, A], seed [2] -> one ``StepResult``;
        ``push`` [P, O] hallucinates (see the module docstring); ``assignment``:
        the particles' members under 'fixed' propagation (drawn per rollout);
        ``cost_push`` (a scalar or [P], with ``push``) adds that many epistemic
        stds to a learned cost, and the learned cost is clipped to
        ``cost_range``. With ``push`` only: ``total`` [P] 0/1 chooses per row
        what the push scales (overriding ``push_std``), and ``repeats`` > 1
        runs the model once per row of observation and action [P / repeats,
        ...], each shared by ``repeats`` consecutive rows of ``push``."""
        prediction, disagreement = self._predict(observation, action, seed, push, assignment,
                                                 cost_push, total, repeats)  # fmt: skip
        if repeats > 1:
            observation = tf.repeat(tf.cast(observation, tf.float32), repeats, axis=0)
            action = tf.repeat(tf.cast(action, tf.float32), repeats, axis=0)
        if self.observation_bounds is not None:
            low, high = self.observation_bounds
            prediction = prediction.with_next_observation(
                tf.clip_by_value(prediction.next_observation, low, high)
            )
        if self.cost_range is not None and prediction.cost is not None:
            low, high = tf.unstack(tf.cast(self.cost_range, tf.float32))
            prediction = dataclasses.replace(
                prediction, cost=tf.clip_by_value(prediction.cost, low, high)
            )
        reward, cost, terminal = step_signals(self.task, observation, action, prediction)
        if terminal is None:
            terminal = tf.zeros_like(reward)
        return StepResult(prediction.next_observation, reward, cost, terminal, disagreement)

    def _rollout(self, start, horizon: int, choose_action: Callable, seed, push=None,
                 uncertainty_budget=None, cost_push=None) -> Rollout:  # fmt: skip
        model_seed, policy_seed = tf.unstack(
            tf.random.experimental.stateless_split(tf.cast(seed, tf.int32), 2)
        )
        seeds = tf.random.experimental.stateless_split(model_seed, horizon)
        policy_seeds = tf.random.experimental.stateless_split(policy_seed, horizon)
        start = tf.cast(start, tf.float32)
        particles = tf.shape(start)[0]
        push_t = None if push is None else tf.transpose(tf.cast(push, tf.float32), [1, 0, 2])
        assignment = None
        if self.propagation == "fixed":  # TS-∞: each particle keeps one member per rollout.
            model_seed, assign_seed = tf.unstack(tf.random.experimental.stateless_split(
                model_seed, 2))  # fmt: skip
            seeds = tf.random.experimental.stateless_split(model_seed, horizon)
            elites = int(self.dynamics.ensemble.elite_indices.shape[0])
            assignment = particle_assignment(start.shape[0], elites, assign_seed)

        def body(t, observation, alive, accumulated, arrays):
            action = choose_action(t, observation, policy_seeds[t])
            result = self.step(observation, action, seeds[t],
                               None if push_t is None else push_t[t], assignment,
                               cost_push)  # fmt: skip
            if uncertainty_budget is not None:
                # As CMBPO: a path ends before the step that would take its
                # accumulated disagreement to the budget.
                alive = alive * tf.cast(accumulated + result.disagreement < uncertainty_budget,
                                        tf.float32)  # fmt: skip
            observations, actions, rewards, costs, alives, terminated, disagreements = arrays
            arrays = (
                observations.write(t + 1, result.next_observation),
                actions.write(t, action),
                rewards.write(t, result.reward * alive),
                costs.write(t, result.cost * alive),
                alives.write(t, alive),
                terminated.write(t, result.terminal * alive),
                disagreements.write(t, result.disagreement),
            )
            return (t + 1, result.next_observation, alive * (1.0 - result.terminal),
                    accumulated + result.disagreement, arrays)  # fmt: skip

        arrays = (tf.TensorArray(tf.float32, size=horizon + 1).write(0, start),
                  *[tf.TensorArray(tf.float32, size=horizon) for _ in range(6)])  # fmt: skip
        _, _, _, _, arrays = tf.while_loop(
            lambda t, *_: t < horizon,
            body,
            [tf.constant(0), start, tf.ones([particles]), tf.zeros([particles]), arrays],
        )
        observations, actions, rewards, costs, alives, terminated, disagreements = arrays

        def stacked(array, rank):
            return tf.transpose(array.stack(), [1, 0, *range(2, rank)])

        return Rollout(
            stacked(observations, 3),
            stacked(actions, 3),
            stacked(rewards, 2),
            stacked(costs, 2),
            stacked(alives, 2),
            stacked(terminated, 2),
            stacked(disagreements, 2),
        )

    def rollout_actions(self, start, actions, seed, push=None, cost_push=None) -> Rollout:
        """start [P, O], actions [P, H, A] (H static), seed [2] int32; ``push``
        [P, H, O] hallucinates along the epistemic std (module docstring),
        ``cost_push`` pushes a learned cost (``step``)."""
        horizon = actions.shape[1]
        return self._rollout(start, horizon, lambda t, _, __: actions[:, t], seed, push,
                             cost_push=cost_push)  # fmt: skip

    def rollout_replicas(self, start, actions, push, total=None, cost_push=None):
        """Summed rewards and costs [P, R] of R hallucinated replicas of each
        of P action sequences: start [P, O], actions [P, H, A] (H static),
        push [P, R, H, O]; ``total`` [R] 0/1 per replica: what its push
        scales (1: the total std, as ``push_std="total"``; default
        ``push_std``); ``cost_push`` [R] (or a scalar): epistemic stds added
        to a learned cost, per replica.

        Gives what ``rollout_actions`` gives each of the P·R rows, summed over
        the horizon, for less work: the replicas of a sequence share its first
        (observation, action), so the model's first step runs once per
        sequence, and the loop carries running sums instead of every step's
        observations (the planners need nothing else)."""
        count, horizon, replicas = actions.shape[0], actions.shape[1], push.shape[1]
        rows = count * replicas
        push_t = tf.transpose(tf.reshape(tf.cast(push, tf.float32), [rows, horizon, -1]),
                              [1, 0, 2])  # fmt: skip
        if total is not None:
            total = tf.tile(tf.cast(total, tf.float32), [count])
        if cost_push is not None:
            cost_push = tf.tile(tf.broadcast_to(tf.cast(cost_push, tf.float32), [replicas]),
                                [count])  # fmt: skip
        seed = tf.zeros([2], tf.int32)  # The pushed mean model draws nothing.
        actions = tf.cast(actions, tf.float32)
        first = self.step(start, actions[:, 0], seed, push_t[0], cost_push=cost_push,
                          total=total, repeats=replicas)  # fmt: skip
        row_actions = tf.transpose(tf.repeat(actions, replicas, axis=0), [1, 0, 2])  # [H, rows, A]

        def body(t, observation, alive, rewards, costs):
            result = self.step(observation, row_actions[t], seed, push_t[t],
                               cost_push=cost_push, total=total)  # fmt: skip
            return (t + 1, result.next_observation, alive * (1.0 - result.terminal),
                    rewards + result.reward * alive, costs + result.cost * alive)  # fmt: skip

        _, _, _, rewards, costs = tf.while_loop(
            lambda t, *_: t < horizon,
            body,
            [
                tf.constant(1),
                first.next_observation,
                1.0 - first.terminal,
                first.reward,
                first.cost,
            ],  # fmt: skip
        )
        return tf.reshape(rewards, [count, replicas]), tf.reshape(costs, [count, replicas])

    def rollout_policy(self, start, policy: Callable, horizon: int, seed,
                       uncertainty_budget=None) -> Rollout:  # fmt: skip
        """start [P, O]; ``policy(observation [P, O], seed [2]) -> action [P, A]``;
        seed [2] int32. With ``uncertainty_budget`` (needs ``measure_disagreement``), each
        path ends before the step at which its summed disagreement reaches it."""
        if uncertainty_budget is not None and not self.measure_disagreement:
            raise ConfigError("an uncertainty budget needs ModelEnv(measure_disagreement=True)")
        return self._rollout(start, horizon, lambda _, observation, step_seed: policy(
            observation, step_seed), seed, uncertainty_budget=uncertainty_budget)  # fmt: skip
