"""Model-predictive agents on a probabilistic ensemble; ``PessimisticAgent``
plans by min-max CEM against hallucinated epistemic controls.

The family shares one loop (``PlanningAgent``): ``exploration_steps`` random
steps, then a fitted ``DynamicsEnsemble`` and a compiled planner that, at
every control step, optimizes an action sequence from the current
observation and applies its first action (model-predictive control, warm
started by the shifted previous plan). The ensemble is refitted between
episodes, once when exploration ends, and every ``refit_every`` agent steps
when that is set. Reward and cost are the
environment's known functions where it has them (``envs.task_functions``;
the method's assumption) and are learned by the ensemble otherwise.

Variants, by their objective J (lower is better; H the horizon, λ the
``penalty``, b the ``barrier``, d the budget over the horizon: ``cost_limit``,
a budget per ``episode_length`` environment steps as for every agent, times
H · action_repeat / episode_length):

- ``cem``: −(1/H) Σ r on the mean model; ignores cost.
- ``cem_cost``: λ·b(Σ c − d) − (1/H) Σ r, both on the mean model.
- ``pessimistic_fixed``: costs along the trajectory pushed by a fixed
  η = ``fixed_eta`` (s̃ₜ₊₁ = μ + α σ_epistemic η), rewards on the mean model.
- ``pessimistic``: costs along the worst trajectory over η ∈ [−1, 1]^O
  found by min-max CEM (``planning.minmax``), rewards on the mean model (or,
  with ``reward_particles`` > 0, averaged over that many sampled trajectories,
  as for the other variants but ``optimistic_pessimistic``).
- ``optimistic_pessimistic``: as ``pessimistic``, but the rewards follow an
  optimistic trajectory whose η the planner chooses together with the actions.

α, the size of the epistemic push, follows a sigmoid over episodes from
``alpha_start`` to ``alpha_end`` (midpoint ``alpha_midpoint``, width
``alpha_width``). Without ``--safety`` the cost term is off for all variants.
"""

from __future__ import annotations

import dataclasses
import math
import types

import numpy as np
import tensorflow as tf

from saferl_tf.agents.base import Agent, register_agent
from saferl_tf.config import AgentConfig
from saferl_tf.errors import ConfigError
from saferl_tf.models.dynamics import DynamicsEnsemble
from saferl_tf.planning.cem import CEMConfig, cem_minimize_batched, shift_plan, split_seeds
from saferl_tf.planning.minmax import MinMaxConfig, MinMaxState, minmax_cem_batched, next_state
from saferl_tf.planning.objectives import BARRIERS, TrajectoryModel, barrier


def _subset(config_class, source, **given):
    """``config_class`` built from the fields of ``source`` with the same names."""
    names = {field.name for field in dataclasses.fields(config_class)} - set(given)
    return config_class(**{name: getattr(source, name) for name in names if hasattr(source, name)},
                        **given)  # fmt: skip


@register_agent("cem")
class PlanningAgent(Agent):
    """CEM model-predictive control on the ensemble's mean model (ignores cost).

    The base of the family: subclasses override ``objective`` (and, for a
    second player, ``_plan_sequence``).
    """

    @dataclasses.dataclass
    class Config(AgentConfig):
        observation: str = "vector"
        action_repeat: int = 1
        cost_limit: float = 0.0  # Per episode_length environment steps (d: its horizon share).
        episode_length: int = 200
        penalty: float = 1.0  # λ
        barrier: str = "relu"
        # CEM over actions (normalized to [-1, 1]).
        horizon: int = 20
        samples: int = 500
        elites: int = 50
        iterations: int = 5  # CEM iterations per plan; min-max: per player and round.
        initial_std: float = 5.0
        momentum: float = 0.0
        # Rewards along this many sampled trajectories (common random numbers),
        # averaged; 0: along the model's mean trajectory.
        reward_particles: int = 0
        # Min-max CEM (the hallucinated controls η).
        rounds: int = 10
        eta_samples: int = 500
        eta_elites: int = 50
        eta_initial_std: float = 1.0
        opponent_elites: int = 1  # Each player's samples that the other scores against.
        carry_std: bool = True  # False: every CEM call restarts at its initial std.
        # Next control step's start. "mean": the (action player's) elite mean
        # shifted, zero-filled. "shift_all", as SafeExploration: min-max, both
        # players' means and fixed elites shifted; CEM, the best sequence
        # shifted; the last step repeated.
        warm_start: str = "mean"
        fixed_eta: float = 1.0  # η of every dimension for pessimistic_fixed.
        # Size of the epistemic push over episodes k = 1, 2, ... (counted from
        # the first, exploration's included; SafeExploration explores apart and
        # counts planned episodes. With exploration shorter than an episode, as
        # the pendulum's 100 steps, the first planned steps get α(1) in both):
        # alpha_start + (alpha_end - alpha_start) · sigmoid((k - midpoint) / width).
        alpha_start: float = 1.0
        alpha_end: float = 3.0
        alpha_midpoint: float = 6.0
        alpha_width: float = 1.0
        # The ensemble.
        members: int = 5
        model_elites: int = 5
        # 32 units: the min-max planner evaluates the ensemble ~300k times per
        # control step; 64 units doubled its time (docs/BENCHMARKS.md).
        hidden_units: int = 32
        hidden_layers: int = 3
        probabilistic: bool = True
        weight_decay: float = 5e-5
        model_learning_rate: float = 1e-3
        model_batch_size: int = 256
        model_epochs: int = 50  # At most, per refit (early stopping ends sooner)...
        # ...but at least this many gradient steps: with the few hundred
        # transitions of the first episodes an epoch is one or two steps, and
        # early stopping left the model untrained (docs/BENCHMARKS.md).
        model_min_steps: int = 500
        patience: int = 5
        holdout_ratio: float = 0.1
        calibrate: bool = False
        calibration: str = "likelihood"  # Or "quantile": per output dimension (the seed's).
        bootstrap: bool = False  # Members train on resamples of the data (mbrl-lib's).
        known_task: bool = True  # Use the environment's reward/cost functions if it has them.
        # Schedule.
        exploration_steps: int = 100
        refit_every: int = (
            0  # Also refit every N agent steps (env steps / action_repeat; 0: never).
        )
        replay_capacity: int = 1_000_000

    @property
    def horizon_cost_limit(self) -> float:
        """d: the share of ``cost_limit`` (per ``episode_length`` environment
        steps) that falls on one planning horizon."""
        config = self.config
        return config.cost_limit * config.horizon * config.action_repeat / config.episode_length

    def __init__(self, observation_space, action_space, config=None, **kwargs):
        super().__init__(observation_space, action_space, config, **kwargs)
        config, task = self.config, self.task
        self._require_box_actions_and_vector_observations()
        if config.barrier not in BARRIERS:
            raise ConfigError(
                f"unknown barrier {config.barrier!r}; accepted: {', '.join(BARRIERS)}"
            )
        use_task = task is not None and config.known_task
        if use_task and config.action_repeat != 1:
            raise ConfigError(
                "known task functions describe one environment step: use --action_repeat=1 "
                "or set known_task=false to learn reward and cost"
            )
        self.task = task if use_task else None
        self.observation_size = int(observation_space.shape[0])
        self.action_size = int(np.prod(action_space.shape))
        learn = tuple(name for name in ("reward", "cost") if getattr(self.task, name, None) is None)
        self.dynamics = DynamicsEnsemble(
            self.observation_size,
            self.action_size,
            learn=learn,
            members=config.members,
            elites=config.model_elites,
            hidden_units=config.hidden_units,
            hidden_layers=config.hidden_layers,
            probabilistic=config.probabilistic,
            weight_decay=config.weight_decay,
            learning_rate=config.model_learning_rate,
            batch_size=config.model_batch_size,
            holdout_ratio=config.holdout_ratio,
            max_epochs=config.model_epochs,
            patience=config.patience,
            calibrate=config.calibrate,
            calibration=config.calibration,
            bootstrap=config.bootstrap,
            jit=config.jit,
            seed=self.seed,
        )
        self.ensemble = self.dynamics.ensemble  # Tracked by the checkpoint.
        cost_range = None
        if "cost" in learn:
            # Learned costs are clipped to [min(0, seen), max(1, seen)]: at least
            # the 0/1 range of an indicator cost (safety-gymnasium's), so that
            # the push by the cost's own spread acts before any cost is seen.
            self.cost_range = cost_range = tf.Variable([0.0, 1.0], trainable=False)
        bounds = None
        low, high = observation_space.low.reshape(-1), observation_space.high.reshape(-1)
        if np.isfinite(low).any() or np.isfinite(high).any():
            bounds = (low, high)  # Imagined observations stay in the space (a lidar's [0, 1]).
        self.trajectories = TrajectoryModel(self.dynamics, self.task, cost_range, bounds)
        # The planner settings are fields of the agent's config under the same names.
        self.cem = _subset(CEMConfig, config)
        self.cem.check()
        self.minmax = _subset(MinMaxConfig, config, actions=self.cem)
        self.minmax.check()
        if config.refit_every < 0:
            raise ConfigError(f"refit_every must be >= 0 (0: between episodes), got "
                              f"{config.refit_every}")  # fmt: skip
        if config.model_min_steps < 0:
            raise ConfigError(f"model_min_steps must be >= 0, got {config.model_min_steps}")
        if config.episode_length < 1:
            raise ConfigError(f"episode_length must be >= 1, got {config.episode_length}")
        if config.reward_particles < 0:
            raise ConfigError(f"reward_particles must be >= 0, got {config.reward_particles}")
        self.penalty = config.penalty if config.safety else 0.0
        self.episodes = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.alpha = tf.Variable(self._alpha_at(1), dtype=tf.float32, trainable=False)
        self.model_fits = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.random = tf.random.Generator.from_seed(self.seed + 7)
        self._refit_due = False
        # Warm starts per mode and environment; a plain namespace, so that the
        # checkpoint does not track them (they restart with each episode).
        self._plans = types.SimpleNamespace(explore=None, evaluate=None)
        self.trace_count = 0
        self._plan_step = tf.function(self._plan_step_impl, jit_compile=config.jit)

    # --- The objective (subclasses change this) --------------------------------

    @property
    def plan_size(self) -> int:
        """Width of one step of the planned sequence (actions, plus any η the planner owns)."""
        return self.action_size

    def objective(self, start, sequences, seeds):
        """J of N sequences [B, N, H, plan_size] from each start [B, O] -> [B, N]
        (B environments planned together); ``seeds`` [B, 2] draw each start's
        reward particles (the same for every call of one plan)."""
        return -self.mean_rewards(start, sequences, seeds)

    def mean_rewards(self, start, actions, seeds, eta=None):
        """Mean reward over the horizon [B, N] of actions [B, N, H, A]: along the
        model's mean trajectory (pushed by ``eta`` [B, N, H, O] if given), or
        averaged over ``reward_particles`` sampled ones."""
        if self.config.reward_particles == 0 or eta is not None:
            rewards, _ = self.trajectories.rollout(start, actions, eta, self.alpha)
            return tf.reduce_mean(rewards, axis=-1)
        rewards, _ = self.trajectories.sampled(start, actions, self._particle_noise(seeds))
        return tf.reduce_mean(rewards, axis=-1) / actions.shape[-2]

    def _particle_noise(self, seeds):
        """Each start's particle draws [B, P, H, O] from its seed [B, 2]."""
        shape = [self.config.reward_particles, self.config.horizon, self.observation_size]
        return tf.stack([tf.random.stateless_normal(shape, seeds[b])
                         for b in range(seeds.shape[0])])  # fmt: skip

    def constraint_term(self, costs):
        """λ · barrier(Σₜ cost − d) of costs [..., H] -> [...]."""
        return self.barrier_of_sums(tf.reduce_sum(costs, axis=-1))

    def barrier_of_sums(self, summed_costs):
        """λ · barrier(C − d) of summed costs C [...]."""
        return self.penalty * barrier(summed_costs - self.horizon_cost_limit, self.config.barrier)

    def initial_plan_state(self) -> tuple[np.ndarray, ...]:
        """One environment's planner state at the start of an episode (zeros)."""
        return (np.zeros((self.config.horizon, self.plan_size), np.float32),)

    def _plan_sequence(self, start, state, seeds):
        """Per environment: the sequence [B, H, plan_size] to follow and the
        next plan state (parts [B, ...]), from starts [B, O] and seeds [B, 2]."""
        objective_seeds, cem_seeds = tf.unstack(split_seeds(seeds, 2))
        result = cem_minimize_batched(
            lambda sequences: self.objective(start, sequences, objective_seeds),
            state[0], self.cem, cem_seeds,
        )  # fmt: skip
        if self.config.warm_start == "shift_all":  # SafeExploration's CEM planner.
            return result.best, (shift_plan(result.best, axis=1, repeat_last=True),)
        return result.best, (shift_plan(result.mean, axis=1),)

    # --- Acting ----------------------------------------------------------------

    def _alpha_at(self, episode: int) -> float:
        """α in episode ``episode`` (counted from 1)."""
        config = self.config
        progress = 1.0 / (1.0 + math.exp(-(episode - config.alpha_midpoint) / config.alpha_width))
        return config.alpha_start + (config.alpha_end - config.alpha_start) * progress

    def _plan_step_impl(self, observations, state, seeds):
        """observations [B, O], plan states (a tuple of [B, ...]), seeds [B, 2]
        -> first actions [B, A], next states: every environment in one call."""
        self.trace_count += 1
        sequences, state = self._plan_sequence(observations, state, tf.cast(seeds, tf.int32))
        return sequences[:, 0, : self.action_size], state

    def plan_batch(self, observations: np.ndarray, states: list, seeds=None):
        """One planning call for B environments: observations [B, O], a plan
        state per environment (None: the start of its episode), seeds [B, 2]
        (default: drawn from the agent's generator) -> actions [B, A] in
        [-1, 1] and the next plan state of each environment."""
        states = [self.initial_plan_state() if state is None else state for state in states]
        stacked = tuple(tf.constant(np.stack(parts)) for parts in zip(*states))
        if seeds is None:
            seeds = np.stack([self.random.make_seeds(1)[:, 0].numpy() for _ in states])
        actions, after = self._plan_step(tf.constant(observations, tf.float32), stacked,
                                         tf.constant(seeds, tf.int32))  # fmt: skip
        after = [part.numpy() for part in after]
        return actions.numpy(), [tuple(part[b] for part in after) for b in range(len(states))]

    def plan(self, observation: np.ndarray, state: tuple | None = None):
        """One planning call: observation [O] -> action [A] in [-1, 1] and the
        next plan state (None: the start of an episode)."""
        actions, states = self.plan_batch(np.asarray(observation)[None], [state])
        return actions[0], states[0]

    def _act(self, observation, explore, is_first):
        batch = observation.shape[0]
        if explore and (self.num_steps < self.config.exploration_steps or not self._fitted):
            return self._to_space(self.rng.uniform(-1.0, 1.0, (batch, self.action_size)))
        if not self._fitted:  # Evaluating before any data: there is no model to plan with.
            return self._to_space(np.zeros((batch, self.action_size), np.float32))
        mode = "explore" if explore else "evaluate"
        plans = getattr(self._plans, mode)
        if plans is None or len(plans) != batch:
            plans = [None] * batch
        warm = [None if is_first[index] else plans[index] for index in range(batch)]
        # Every environment in one compiled call.
        actions, plans = self.plan_batch(observation.astype(np.float32), warm)
        setattr(self._plans, mode, plans)
        return self._to_space(actions)

    @property
    def _fitted(self) -> bool:
        return bool(self.ensemble.fitted.numpy())

    # --- Learning --------------------------------------------------------------

    def _observe(self, transition):
        ended = np.asarray(transition.terminated) | np.asarray(transition.truncated)
        if ended.any():
            self.episodes.assign_add(int(ended.sum()))
            self.alpha.assign(self._alpha_at(int(self.episodes.numpy()) + 1))
            self._refit_due = True
        if self.num_steps >= self.config.exploration_steps and not self._fitted:
            self._refit_due = True
        every = self.config.refit_every
        if every and self.num_steps // every > (self.num_steps - len(ended)) // every:
            self._refit_due = True

    def _update(self) -> dict:
        if not self._refit_due or self.num_steps < self.config.exploration_steps:
            return {}
        self._refit_due = False
        self.replay.flush()
        data = self.replay.transitions()
        actions = self._from_space(data["action"])
        report = self.dynamics.fit(
            data["observation"],
            actions,
            data["next_observation"],
            rewards=data["reward"],
            costs=data["cost"],
            terminals=data["terminated"].astype(np.float32),
            min_steps=self.config.model_min_steps,
        )
        if hasattr(self, "cost_range"):
            costs = data["cost"]
            self.cost_range.assign([min(0.0, float(costs.min())), max(float(costs.max()), 1.0)])
        self.model_fits.assign_add(1)
        metrics = report.metrics()
        metrics["model/transitions"] = float(len(actions))
        metrics["planner/alpha"] = float(self.alpha.numpy())
        return metrics


@register_agent("cem_cost")
class CostPenaltyCEMAgent(PlanningAgent):
    """CEM on the mean model with the cost penalized: λ·b(Σ c − d) − mean r."""

    def objective(self, start, sequences, seeds):
        if self.penalty == 0.0:  # Without --safety: no cost rollouts.
            return -self.mean_rewards(start, sequences, seeds)
        if self.config.reward_particles:
            _, costs = self.trajectories.rollout(start, sequences)
            return self.constraint_term(costs) - self.mean_rewards(start, sequences, seeds)
        rewards, costs = self.trajectories.rollout(start, sequences)
        return self.constraint_term(costs) - tf.reduce_mean(rewards, axis=-1)


@register_agent("pessimistic_trajectory")
class PessimisticTrajectoryAgent(PlanningAgent):
    """PesTraj, SafeExploration's baseline: CEM over actions where each plan is
    rolled out along ``reward_particles`` sampled trajectories for its
    rewards and as many, sampled independently, for its costs;
    J = λ·b(maxₚ Σₜ cₜᵖ − d) − meanₚ meanₜ rₜᵖ (the worst particle's cost)."""

    @dataclasses.dataclass
    class Config(PlanningAgent.Config):
        reward_particles: int = 10

    def __init__(self, observation_space, action_space, config=None, **kwargs):
        super().__init__(observation_space, action_space, config, **kwargs)
        if self.config.reward_particles < 1:
            raise ConfigError("pessimistic_trajectory needs reward_particles >= 1")

    def objective(self, start, sequences, seeds):
        reward_seeds, cost_seeds = tf.unstack(split_seeds(seeds, 2))
        if self.penalty == 0.0:  # Without --safety: the reward particles only.
            rewards, _ = self.trajectories.sampled(start, sequences,
                                                   self._particle_noise(reward_seeds))  # fmt: skip
            return -tf.reduce_mean(rewards, axis=-1) / sequences.shape[-2]
        # Both particle sets in one rollout (the same sums as two ``sampled`` calls).
        (rewards, _), (_, costs) = self.trajectories.replica_sums(start, sequences, [
            (self._particle_noise(reward_seeds), True, 0.0),
            (self._particle_noise(cost_seeds), True, 0.0),
        ])  # fmt: skip
        worst = tf.reduce_max(costs, axis=-1)  # [B, N]
        return self.barrier_of_sums(worst) - tf.reduce_mean(rewards, axis=-1) / sequences.shape[-2]


@register_agent("pessimistic_fixed")
class FixedEtaAgent(PlanningAgent):
    """Costs along the trajectory pushed by a fixed η; rewards on the mean model
    (or averaged over ``reward_particles`` sampled trajectories)."""

    def objective(self, start, sequences, seeds):
        if self.penalty == 0.0:  # Without --safety: no pushed cost rollouts.
            return -self.mean_rewards(start, sequences, seeds)
        eta = tf.fill([sequences.shape[0], 1, sequences.shape[2], self.observation_size],
                      self.config.fixed_eta)  # fmt: skip
        if self.config.reward_particles:
            _, costs = self.trajectories.rollout(start, sequences, eta, self.alpha)
            return self.constraint_term(costs) - self.mean_rewards(start, sequences, seeds)
        rewards, costs = self.trajectories.reward_and_cost(
            start, sequences, None, sequences, eta, self.alpha
        )
        return self.constraint_term(costs) - tf.reduce_mean(rewards, axis=-1)


@register_agent("pessimistic")
class PessimisticAgent(PlanningAgent):
    """Min-max CEM: actions minimize, hallucinated controls η maximize
    J = λ·b(Σ c(pessimistic trajectory) − d) − mean r(mean or sampled
    trajectories). The defaults are the reduced planner (one CEM iteration
    per player and round, std carried across rounds, one opponent sample);
    the ``seed`` preset is SafeExploration's (README)."""

    @dataclasses.dataclass
    class Config(PlanningAgent.Config):
        iterations: int = 1

    def reward_term(self, start, sequences, seeds):
        """Mean rewards [B, N] of sequences [B, N, H, plan_size]."""
        return self.mean_rewards(start, sequences[..., : self.action_size], seeds)

    def minmax_objective(self, start, sequences, eta, seeds):
        """J of every (sequence, η) pair: sequences [B, N, H, plan_size], eta
        [B, M, H, O] -> [B, N, M]. The rewards do not depend on the adversary's
        η, so they are rolled out once per sequence."""
        actions = sequences[..., : self.action_size]
        if type(self).reward_term is not PessimisticAgent.reward_term:  # A variant's own rewards.
            costs = self.trajectories.pair_costs(start, actions, eta, self.alpha)
            return (
                self.barrier_of_sums(costs) - self.reward_term(start, sequences, seeds)[..., None]
            )
        # The η opponents' cost replicas and the reward replicas (the mean
        # trajectory, or the sampled particles) in one rollout.
        particles = self.config.reward_particles
        if particles:
            reward_group = (self._particle_noise(seeds), True, 0.0)
        else:
            reward_group = (tf.zeros([eta.shape[0], 1, *eta.shape[2:]]), False, 0.0)
        (_, costs), (rewards, _) = self.trajectories.replica_sums(
            start, actions, [(self.alpha * eta, False, self.alpha), reward_group]
        )  # fmt: skip
        mean_rewards = tf.reduce_mean(rewards, axis=-1) / actions.shape[-2]
        return self.barrier_of_sums(costs) - mean_rewards[..., None]

    def initial_plan_state(self) -> tuple[np.ndarray, ...]:
        state = MinMaxState.initial(self.config.horizon, self.plan_size, self.observation_size,
                                    self.minmax)  # fmt: skip
        return tuple(np.asarray(part) for part in state)

    def _plan_sequence(self, start, state, seeds):
        objective_seeds, minmax_seeds = tf.unstack(split_seeds(seeds, 2))
        if self.penalty == 0.0:
            # Without --safety J does not depend on η: the action player's
            # rounds alone (the same seeds, so the same plan), without the
            # adversary and the cost rollouts.
            def rewards_only(sequences, _):
                return -self.reward_term(start, sequences, objective_seeds)[..., None]

            result = minmax_cem_batched(rewards_only, MinMaxState(*state), self.minmax,
                                        minmax_seeds, adversary=False)  # fmt: skip
            return result.actions, tuple(next_state(result.state, self.minmax, batched=True))
        result = minmax_cem_batched(
            lambda sequences, etas: self.minmax_objective(start, sequences, etas, objective_seeds),
            MinMaxState(*state),
            self.minmax,
            minmax_seeds,
        )
        return result.actions, tuple(next_state(result.state, self.minmax, batched=True))


@register_agent("optimistic_pessimistic")
class OptimisticPessimisticAgent(PessimisticAgent):
    """Optimistic reward, pessimistic cost: the planner also picks an η for the
    reward trajectory (its sequence is [actions, η_reward]); the adversary
    picks η for the cost trajectory."""

    @property
    def plan_size(self) -> int:
        return self.action_size + self.observation_size

    def reward_term(self, start, sequences, seeds):
        actions, reward_eta = tf.split(sequences, [self.action_size, self.observation_size], -1)
        return self.mean_rewards(start, actions, seeds, eta=reward_eta)
