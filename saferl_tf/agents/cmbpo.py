"""CMBPOAgent: constrained model-based policy optimization (Zanger, Daaboul,
Zöllner 2021), with model-free CPO and TRPO as switches of the same agent.

One epoch: collect ``real_samples`` environment steps with the current
Gaussian policy, then update once on a batch of ``batch_size`` samples::

    real samples (this epoch)  +  model samples (batch_size - real_samples)
        -> GAE for reward (gamma 0.99, lambda 0.95) and cost (0.97, 0.5)
        -> one CPO step (saferl_tf.rl.cpo: CG, Fisher-vector products, the dual,
           a backtracking line search) on the whole batch
        -> the value and cost-value ensembles refit on the batch's returns

Model samples (``use_model``) come from ``ModelEnv`` rollouts of a
probabilistic ensemble (7 members, 5 elites) predicting the change of state
and the reward, with cost and termination from the task's known functions
(``envs.task_functions``; learned where a task has none). Rollouts start from
``rollout_starts`` archived real states drawn by a Boltzmann distribution over
the epochs they were collected in (weight exp(-2 KL(pi_now || pi_epoch)),
uniform within an epoch) and each path stops before its summed ensemble
disagreement (the members' mean pairwise KL) reaches a budget: 5 x the mean
one-step disagreement measured once after the 10,000 exploration steps, at most
``max_rollout_length`` steps (``rollout_mode: schedule`` grows a fixed length
instead). The next epoch's real samples are (this epoch's mean disagreement /
the initial one) x ``initial_real_samples``, at least ``min_real_samples``.

The constraint (``safety``, CPO; off: TRPO's step, cost only logged) is in
per-step units, as the published code: c = (mean cost per step of this epoch's
real steps) - cost_limit / episode_length + m, with a learned margin m <-
max(0, 0.9999 m + 1e-4 (mean real episode cost over the last 300 epochs -
cost_limit) / episode_length). The published code takes the cost of the whole
batch, model samples included (``constraint_cost: batch``, the ``seed_constraint``
preset); on HalfCheetahVelocity that batch put the cost at 0.2-0.4x the real
one and the constraint never acted (docs/BENCHMARKS.md). The cost gradient
comes from the whole batch either way.

Call sequence (the ``Agent`` contract)::

    agent = CMBPOAgent(observation_space, action_space, CMBPOAgent.Config(), task=task)
    action = agent.act(observation [N, O], explore, is_first [N])
    agent.observe(transition)
    metrics = agent.update()   # at the end of an epoch: model, rollouts, policy, values

Registered as ``cmbpo`` (model-based), ``cpo`` (``use_model`` off) and
``trpo`` (also without the constraint). Differences from the published code
are listed in the README.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from saferl_tf.agents.base import Agent, register_agent
from saferl_tf.config import AgentConfig
from saferl_tf.data.archive import TransitionArchive
from saferl_tf.errors import ConfigError
from saferl_tf.models.dynamics import DynamicsEnsemble
from saferl_tf.models.ensemble import GaussianEnsemble
from saferl_tf.models.gaussian_policy import GaussianPolicy, gaussian_kl
from saferl_tf.models.model_env import ModelEnv
from saferl_tf.rl.cpo import accept_step, cpo_step
from saferl_tf.rl.returns import generalized_advantages
from saferl_tf.rl.schedules import schedule_length
from saferl_tf.rl.trust_region import (
    assign_flat,
    backtracking_line_search,
    fisher_vector_product,
    flatten,
    unflatten,
)
from saferl_tf.training.timing import PhaseTimer

MODEL_LOSSES = ("mspe", "mle")
CONSTRAINT_COSTS = ("real", "batch")
ROLLOUT_MODES = ("uncertainty", "schedule")


@dataclasses.dataclass
class EpochSchedule:
    """Where the agent is in its epochs (archive positions count real steps)."""

    epoch: int = 0
    epoch_start: int = 0  # archive.added when this epoch's real samples began
    epoch_target: int = 0  # real samples this epoch collects
    explored: bool = False  # the exploration steps and the first model fit are done
    new_since_fit: int = 0  # real steps since the model's last fit

    def as_array(self) -> np.ndarray:
        return np.array([self.epoch, self.epoch_start, self.epoch_target, int(self.explored),
                         self.new_since_fit], np.int64)  # fmt: skip

    @classmethod
    def from_array(cls, values) -> EpochSchedule:
        epoch, start, target, explored, new = (int(v) for v in values)
        return cls(epoch, start, target, bool(explored), new)


def _gae(rewards, values, next_values, continues, trace, discount, lambda_):
    return generalized_advantages(rewards, values, next_values, continues, discount, lambda_,
                                  trace)  # fmt: skip


def chunk_disagreement(alive, terminated, disagreement, in_chunk) -> tuple[float, float]:
    """The CMBPO code's disagreement of one rollout chunk, which sets the real
    samples of the next epoch: at each step t the mean one-step disagreement
    of the paths stepped (kept at t - 1 and not terminated, so including the
    step that crossed the budget and was dropped), weighted by the paths kept
    at t. alive, terminated, disagreement [P, H] (kept steps; raw values);
    in_chunk [P] (paths started) -> (mean, total weight)."""
    stepped = np.concatenate([in_chunk[:, None].astype(np.float64),
                              alive[:, :-1] - terminated[:, :-1]], axis=1)  # fmt: skip
    counts = stepped.sum(0)
    step_means = (stepped * disagreement).sum(0) / np.maximum(counts, 1)
    kept = alive.sum(0)
    weight = float(kept.sum())
    return float((step_means * kept).sum() / max(weight, 1e-12)), weight


def boltzmann_epoch_probabilities(kls: np.ndarray, sharpness: float) -> np.ndarray:
    """Epoch weights exp(-sharpness * KL_e), normalized: [E] -> [E]."""
    logits = -sharpness * np.maximum(np.asarray(kls, np.float64), 0.0)
    weights = np.exp(logits - logits.max())
    return weights / weights.sum()


def updated_margin(margin: float, mean_real_cost: float, cost_limit: float,
                   episode_length: int, learning_rate: float = 1e-4,
                   discount: float = 0.9999) -> float:  # fmt: skip
    """The learned safety margin: max(0, discount m + lr (cost - limit) / T)."""
    step = learning_rate * (mean_real_cost - cost_limit) / episode_length
    return max(0.0, discount * margin + step)


def constraint_value(cost_per_step: float, cost_limit: float, episode_length: int,
                     margin: float) -> float:  # fmt: skip
    """CPO's c in per-step units: cost - limit / T + margin (c > 0: infeasible)."""
    return cost_per_step - cost_limit / episode_length + margin


@register_agent("cmbpo")
class CMBPOAgent(Agent):
    @dataclasses.dataclass
    class Config(AgentConfig):
        safety: bool = True  # The cost constraint (CPO's step); off: TRPO's, cost only logged.
        cost_limit: float = 10.0  # Per episode_length environment steps.
        episode_length: int = 1000
        use_model: bool = True
        # Policy and trust region.
        policy_units: int = 128
        policy_layers: int = 2
        initial_log_std: float = -0.5
        # Evaluation acts with samples of the Gaussian policy, the policy the
        # constraint holds for, as the published code (its eval_deterministic
        # False); false: with its mean action, which may cost far more.
        evaluate_with_samples: bool = True
        target_kl: float = 0.01
        damping: float = 0.1
        cg_iterations: int = 10
        line_search_steps: int = 10
        line_search_factor: float = 0.8
        # Advantages.
        discount: float = 0.99
        lambda_: float = 0.95
        cost_discount: float = 0.97
        cost_lambda: float = 0.5
        # Where the constraint's current cost per step comes from: "real", this
        # epoch's real steps (the current policy's, on the real system); "batch",
        # the whole policy batch, real and model samples, as the published code.
        # Model rollouts start from older policies' states and are short, so the
        # batch underestimates the current policy's cost (docs/BENCHMARKS.md).
        constraint_cost: str = "real"
        # The learned safety margin added to the constraint.
        learn_margin: bool = True
        margin_learning_rate: float = 1e-4
        margin_discount: float = 0.9999
        margin_history: int = 300  # Epochs whose real cost the margin averages.
        # Value and cost-value ensembles (swish MLPs; predictions average every member).
        value_members: int = 3
        value_elites: int = 2
        value_units: int = 128
        value_layers: int = 2
        value_learning_rate: float = 3e-4
        value_epochs: int = 8
        value_batch_size: int = 2048
        value_weight_decay: float = 1e-6
        # Samples per policy update, real and model together (model-free: real).
        batch_size: int = 50_000
        initial_real_samples: int = 15_000
        min_real_samples: int = 500
        exploration_steps: int = 10_000
        archive_capacity: int = 300_000
        # Dynamics ensemble.
        model_members: int = 7
        model_elites: int = 5
        model_units: int = 512
        model_layers: int = 2
        model_learning_rate: float = 1e-3
        model_weight_decay: float = 1e-6
        model_batch_size: int = 2048
        model_holdout_ratio: float = 0.2
        model_patience: int = 5
        initial_model_epochs: int = 500
        initial_model_min_epochs: int = 150  # The first fit, before the budget is measured.
        # "mspe": the CMBPO code's loss, whose variances stay near the data's, so
        # the members' KL is the spread of their means; "mle": Gaussian likelihood.
        model_loss: str = "mspe"
        model_epochs: int = 10
        model_train_every: int = 4000  # New real steps between refits.
        model_sampling: bool = False  # Add the member's noise (the published code: means).
        # Rollouts.
        rollout_mode: str = "uncertainty"
        rollout_starts: int = 1000
        max_rollout_length: int = 35
        uncertainty_scale: float = 5.0
        calibration_states: int = 5000
        calibration_length: int = 5
        rollout_schedule: tuple[int, int, int, int] = (10, 500, 5, 30)
        start_state_sharpness: float = 2.0
        start_state_samples: int = 1000  # States per epoch for its KL.

    @classmethod
    def wants_task_observation(cls, config) -> bool:
        return config.use_model

    def __init__(self, observation_space, action_space, config=None, **kwargs):
        super().__init__(observation_space, action_space, config, **kwargs)
        config = self.config
        self._require_box_actions_and_vector_observations()
        self._check_config(config)
        self.observation_size = int(observation_space.shape[0])
        self.action_size = int(np.prod(action_space.shape))
        self.policy = GaussianPolicy(self.observation_size, self.action_size,
                                     [config.policy_units] * config.policy_layers,
                                     config.initial_log_std, seed=self.seed)  # fmt: skip
        self.value = self._value_ensemble(self.seed + 1)
        self.cost_value = self._value_ensemble(self.seed + 2)
        if config.use_model:
            self._build_model()
        self.archive = TransitionArchive(config.archive_capacity, {
            "observation": ((self.observation_size,), np.float32),
            "action": ((self.action_size,), np.float32),  # Unclipped, as sampled.
            "reward": ((), np.float32),
            "cost": ((), np.float32),
            "next_observation": ((self.observation_size,), np.float32),
            "terminated": ((), np.float32),
            "truncated": ((), np.float32),
            "env_index": ((), np.int32),
            "epoch": ((), np.int32),
            "policy_mean": ((self.action_size,), np.float32),
        })  # fmt: skip
        # The policy's (state-independent) log_std in each finished epoch.
        self.epoch_log_std = tf.Variable(
            tf.zeros([0, self.action_size]),
            trainable=False,
            shape=tf.TensorShape([None, self.action_size]),
        )
        # Schedule state: Python numbers read every step, in the checkpoint
        # through one variable (``before_checkpoint``).
        first_target = config.batch_size if not config.use_model else config.initial_real_samples
        self.schedule = EpochSchedule(epoch_target=first_target, explored=not config.use_model)
        self._saved_schedule = tf.Variable(self.schedule.as_array(), trainable=False)
        self.initial_disagreement = tf.Variable(0.0, dtype=tf.float64, trainable=False)
        self.uncertainty_budget = tf.Variable(0.0, dtype=tf.float64, trainable=False)
        self.margin = tf.Variable(0.0, dtype=tf.float64, trainable=False)
        self.real_cost_history = tf.Variable(
            tf.fill([config.margin_history], tf.cast(config.cost_limit, tf.float64)),
            trainable=False,
        )
        self.random = tf.random.Generator.from_seed(self.seed + 11)
        self._stash = None  # The last exploring act: (observation, action, mean).
        # Evaluation draws apart, so that evaluating leaves training's draws as they are.
        self._evaluation_rng = np.random.default_rng(self.seed + 13)
        self._acting_weights = None
        self._policy_update = tf.function(self._policy_update_impl, jit_compile=config.jit)
        self._rollout = tf.function(self._rollout_impl, jit_compile=config.jit)
        # GAE of one stream [T] and of rollout paths [P, H], each traced once.
        self._stream_gae, self._path_gae = (
            tf.function(_gae, input_signature=[tf.TensorSpec(shape, tf.float32)] * 5
                        + [tf.TensorSpec([], tf.float32)] * 2)
            for shape in ([None], [None, None])
        )  # fmt: skip
        self.trace_counts = {"policy_update": 0, "rollout": 0}

    # --- Building ------------------------------------------------------------

    @staticmethod
    def _check_config(config) -> None:
        positive = ("batch_size", "min_real_samples", "initial_real_samples", "archive_capacity",
                    "rollout_starts", "max_rollout_length", "episode_length", "value_epochs",
                    "policy_units", "policy_layers", "cg_iterations", "line_search_steps",
                    "margin_history")  # fmt: skip
        for name in positive:
            if getattr(config, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(config, name)}")
        if config.model_loss not in MODEL_LOSSES:
            raise ConfigError(f"unknown model_loss {config.model_loss!r}; accepted: "
                              f"{', '.join(MODEL_LOSSES)}")  # fmt: skip
        if config.constraint_cost not in CONSTRAINT_COSTS:
            raise ConfigError(f"unknown constraint_cost {config.constraint_cost!r}; accepted: "
                              f"{', '.join(CONSTRAINT_COSTS)}")  # fmt: skip
        if config.rollout_mode not in ROLLOUT_MODES:
            raise ConfigError(f"unknown rollout_mode {config.rollout_mode!r}; accepted: "
                              f"{', '.join(ROLLOUT_MODES)}")  # fmt: skip
        if config.min_real_samples > config.batch_size:
            raise ConfigError(f"min_real_samples ({config.min_real_samples}) must not exceed "
                              f"batch_size ({config.batch_size})")  # fmt: skip
        if config.use_model and config.action_repeat != 1:
            raise ConfigError("the model's known task functions describe one environment "
                              "step: use --action_repeat=1 with use_model")  # fmt: skip
        if config.observation != "vector":
            raise ConfigError("CMBPO, CPO and TRPO need --observation=vector")

    def _value_ensemble(self, seed: int) -> GaussianEnsemble:
        config = self.config
        # No holdout: every epoch trains on the whole batch and keeps its last
        # weights (the published code holds out 10% for logging only).
        return GaussianEnsemble(
            self.observation_size, 1, members=config.value_members, elites=config.value_elites,
            hidden_units=config.value_units, hidden_layers=config.value_layers,
            activation="swish", probabilistic=False, weight_decay=config.value_weight_decay,
            learning_rate=config.value_learning_rate, batch_size=config.value_batch_size,
            holdout_ratio=0.0, max_epochs=config.value_epochs, patience=config.value_epochs,
            jit=config.jit, seed=seed,
        )  # fmt: skip

    def _build_model(self) -> None:
        config, task = self.config, self.task
        if task is None:
            learn = ("reward", "cost", "terminal")
        else:
            learn = tuple(n for n in ("reward", "cost") if getattr(task, n, None) is None)
        self.dynamics = DynamicsEnsemble(
            self.observation_size, self.action_size, learn=learn,
            members=config.model_members, elites=config.model_elites,
            hidden_units=config.model_units, hidden_layers=config.model_layers,
            activation="swish", objective="nll" if config.model_loss == "mle" else "mspe",
            weight_decay=config.model_weight_decay,
            learning_rate=config.model_learning_rate, batch_size=config.model_batch_size,
            holdout_ratio=config.model_holdout_ratio, max_holdout=5000,
            max_epochs=config.initial_model_epochs, patience=config.model_patience,
            jit=config.jit, seed=self.seed + 3,
        )  # fmt: skip
        self.ensemble = self.dynamics.ensemble  # Tracked by the checkpoint.
        self.model_env = ModelEnv(self.dynamics, task, propagation="random",
                                  sample=config.model_sampling, measure_disagreement=True,
                                  jit=config.jit)  # fmt: skip

    # --- Acting --------------------------------------------------------------

    def _policy_mean(self, observation: np.ndarray) -> np.ndarray:
        """The policy's mean in NumPy: one environment step's forward pass costs
        microseconds instead of TensorFlow's per-op dispatch (weights cached
        until the next policy update)."""
        if self._acting_weights is None:
            self._acting_weights = [v.numpy() for v in self.policy.parameters]
        weights = self._acting_weights
        hidden = np.asarray(observation, np.float32)
        layers = (len(weights) - 1) // 2
        for index in range(layers):
            hidden = hidden @ weights[2 * index] + weights[2 * index + 1]
            if index < layers - 1:
                hidden = np.tanh(hidden)
        return hidden

    def _act(self, observation, explore, is_first):
        mean = self._policy_mean(observation)
        if explore:
            noise = self.rng.standard_normal(mean.shape).astype(np.float32)
            action = mean + np.exp(self._acting_weights[-1]) * noise
            self._stash = (np.array(observation, np.float32), action, mean)
        elif self.config.evaluate_with_samples:
            noise = self._evaluation_rng.standard_normal(mean.shape).astype(np.float32)
            action = mean + np.exp(self._acting_weights[-1]) * noise
        else:
            action = mean
        # The environment gets the action clipped to its bounds; the policy's
        # log-probabilities and the model use the sample itself.
        return self._to_space(np.clip(action, -1.0, 1.0))

    def _observe(self, transition) -> None:
        observation = np.asarray(transition.observation, np.float32)
        stash = self._stash
        if stash is not None and np.array_equal(stash[0], observation):
            action, mean = stash[1], stash[2]
        else:  # Not the last exploring act's step: what reached the environment.
            action = self._from_space(np.asarray(transition.action, np.float32))
            mean = self._policy_mean(observation)
        self._stash = None
        count = len(observation)
        self.archive.add(
            observation=observation, action=action,
            reward=np.asarray(transition.reward, np.float32),
            cost=np.asarray(transition.cost, np.float32),
            next_observation=np.asarray(transition.next_observation, np.float32),
            terminated=np.asarray(transition.terminated, np.float32),
            truncated=np.asarray(transition.truncated, np.float32),
            env_index=np.arange(count, dtype=np.int32),
            epoch=np.full(count, self.schedule.epoch, np.int32), policy_mean=mean,
        )  # fmt: skip
        self.schedule.new_since_fit += count

    # --- The schedule --------------------------------------------------------

    def _update(self) -> dict:
        config = self.config
        if not self.schedule.explored:
            if self.archive.added < config.exploration_steps:
                return {}
            return self._finish_exploration()
        collected = self.archive.added - self.schedule.epoch_start
        if collected < self.schedule.epoch_target:
            return {}
        return self._epoch_update(collected)

    def _fit_model(self, max_epochs: int, min_epochs: int = 1) -> dict:
        data = self.archive.fields()
        extras = {name: data[name] for name in ("reward", "cost") if name in self.dynamics.learned}
        if "terminal" in self.dynamics.learned:
            extras["terminal"] = data["terminated"]
        report = self.dynamics.fit(data["observation"], data["action"], data["next_observation"],
                                   rewards=extras.get("reward"), costs=extras.get("cost"),
                                   terminals=extras.get("terminal"),
                                   max_epochs=max_epochs, min_epochs=min_epochs)  # fmt: skip
        self.schedule.new_since_fit = 0
        return report.metrics("model/")

    def _finish_exploration(self) -> dict:
        """After the exploration steps: the first model fit and the disagreement
        budget (the mean one-step disagreement along short policy rollouts from
        archived states, times ``uncertainty_scale``)."""
        config = self.config
        metrics: dict = {}
        with PhaseTimer(metrics)("model_fit"):
            metrics.update(self._fit_model(config.initial_model_epochs,
                                           min(config.initial_model_min_epochs,
                                               config.initial_model_epochs)))  # fmt: skip
        data = self.archive.fields()
        picks = self.rng.integers(0, len(self.archive), config.calibration_states)
        start = tf.constant(data["observation"][picks])
        rollout = self.model_env.rollout_policy(start, self._sample_action,
                                                config.calibration_length,
                                                self._seed())  # fmt: skip
        alive = rollout.alive.numpy()
        disagreement = float((rollout.disagreement.numpy() * alive).sum() / max(alive.sum(), 1))
        self.initial_disagreement.assign(disagreement)
        self.uncertainty_budget.assign(config.uncertainty_scale * disagreement)
        self.schedule.explored = True
        self.schedule.epoch_start = self.archive.added
        self.schedule.epoch_target = config.initial_real_samples
        metrics.update(
            {
                "rollout/initial_disagreement": disagreement,
                "rollout/uncertainty_budget": config.uncertainty_scale * disagreement,
            }
        )
        return metrics

    def _seed(self):
        return tf.cast(self.random.make_seeds(1)[:, 0], tf.int32)

    def _sample_action(self, observation, seed):
        distribution = self.policy.distribution(observation)
        return distribution.sample(seed=seed)

    # --- One epoch's update --------------------------------------------------

    def _epoch_update(self, collected: int) -> dict:
        config = self.config
        real_count = min(collected, config.batch_size)
        real = self.archive.newest(collected)
        real = {key: value[:real_count] for key, value in real.items()}
        metrics: dict = {}
        timer = PhaseTimer(metrics)
        total = 4 if config.use_model else 2
        model_batch = None
        next_target = config.batch_size
        if config.use_model:
            if self.schedule.new_since_fit > config.model_train_every:
                with timer("model_fit"):
                    metrics.update(self._fit_model(config.model_epochs))
            self.control.report(1, total)
            with timer("rollouts"):
                model_batch, rollout_metrics = self._model_samples(config.batch_size - real_count)
            metrics.update(rollout_metrics)
            ratio = rollout_metrics["rollout/disagreement"] / max(
                float(self.initial_disagreement.numpy()), 1e-12
            )
            next_target = int(min(config.batch_size,
                                  max(ratio * config.initial_real_samples,
                                      config.min_real_samples)))  # fmt: skip
            self.control.report(2, total)
        with timer("advantages"):
            batch = self._real_batch(real)
        parts = [batch] if model_batch is None else [batch, model_batch]
        merged = {key: np.concatenate([p[key] for p in parts]) for key in batch}
        metrics.update(self._update_margin(real))
        with timer("policy_update"):
            metrics.update(self._update_policy(merged, float(real["cost"].mean())))
        self.control.report(total - 1, total)
        with timer("value_fit"):
            metrics.update(self._fit_values(merged))
        self.control.report(total, total)
        self.schedule.epoch += 1
        self.schedule.epoch_start = self.archive.added
        self.schedule.epoch_target = next_target
        metrics.update({"policy/epoch": float(self.schedule.epoch),
                        "policy/real_samples": float(real_count),
                        "policy/next_real_samples": float(next_target)})  # fmt: skip
        return metrics

    def _values(self, observation):
        """Both ensembles' predictions, averaged over every member: [N] each."""
        result = []
        for ensemble in (self.value, self.cost_value):
            if not bool(ensemble.fitted.numpy()):
                result.append(np.zeros(len(observation), np.float32))
                continue
            members = tf.range(ensemble.members)
            mean, _ = ensemble.member_moments(tf.constant(observation), members)
            result.append(tf.reduce_mean(mean[..., 0], 0).numpy())
        return result

    def _real_batch(self, real: dict) -> dict:
        """This epoch's real steps -> advantages per path (each environment's
        steps in order; a path ends at a termination, a time limit or the end
        of the epoch, which bootstraps)."""
        config = self.config
        order = np.lexsort((np.arange(len(real["env_index"])), real["env_index"]))
        data = {key: value[order] for key, value in real.items()}
        value, cost_value = self._values(data["observation"])
        next_value, next_cost_value = self._values(data["next_observation"])
        env = data["env_index"]
        last_of_env = np.append(env[1:] != env[:-1], True)
        ends = (data["terminated"] > 0) | (data["truncated"] > 0) | last_of_env
        continues = 1.0 - data["terminated"]
        trace = 1.0 - ends.astype(np.float32)
        advantages = self._stream_gae(data["reward"], value, next_value, continues, trace,
                                      config.discount, config.lambda_).numpy()  # fmt: skip
        cost_advantages = self._stream_gae(data["cost"], cost_value, next_cost_value, continues,
                                           trace, config.cost_discount,
                                           config.cost_lambda).numpy()  # fmt: skip
        return self._batch_fields(data["observation"], data["action"], data["cost"], advantages,
                                  cost_advantages, value, cost_value)  # fmt: skip

    @staticmethod
    def _batch_fields(observation, action, cost, advantages, cost_advantages, value, cost_value):
        """Returns targets from the raw advantages; advantages standardized and
        cost advantages centred within this part of the batch (as the
        published code: the real part and each rollout chunk apart)."""
        spread = advantages.std()
        return {
            "observation": observation.astype(np.float32),
            "action": action.astype(np.float32),
            "cost": cost.astype(np.float32),
            "return": (advantages + value).astype(np.float32),
            "cost_return": (cost_advantages + cost_value).astype(np.float32),
            "advantage": ((advantages - advantages.mean()) / (spread + 1e-8)).astype(np.float32),
            "cost_advantage": (cost_advantages - cost_advantages.mean()).astype(np.float32),
        }

    def _start_state_sampler(self):
        """A function ``count -> [count, O]`` archived observations: an epoch
        by Boltzmann weights on KL(pi_now || pi_epoch) (each epoch's KL from
        ``start_state_samples`` of its states), then uniform within it. The
        weights are computed once, for every rollout chunk of an update."""
        config = self.config
        data = self.archive.fields()
        epochs = data["epoch"]
        present, counts = np.unique(epochs, return_counts=True)
        log_stds = self.epoch_log_std.numpy()
        current = self.policy.log_std.numpy()
        kls = []
        for epoch in present:
            rows = np.flatnonzero(epochs == epoch)
            picks = rows[self.rng.integers(0, len(rows), config.start_state_samples)]
            mean_now = self._policy_mean(data["observation"][picks])
            old_log_std = log_stds[epoch] if epoch < len(log_stds) else current
            kl = gaussian_kl(mean_now, current, data["policy_mean"][picks], old_log_std)
            kls.append(float(tf.reduce_mean(kl)))
        probability = boltzmann_epoch_probabilities(np.array(kls), config.start_state_sharpness)
        per_row = (probability / counts)[np.searchsorted(present, epochs)]
        per_row /= per_row.sum()
        observations = data["observation"]

        def sample(count: int) -> np.ndarray:
            return observations[self.rng.choice(len(per_row), count, p=per_row)]

        return sample

    def _rollout_impl(self, start, seed, budget):
        self.trace_counts["rollout"] += 1
        rollout = self.model_env.rollout_policy(start, self._sample_action,
                                                self.config.max_rollout_length, seed,
                                                uncertainty_budget=budget)  # fmt: skip
        value = [
            self._ensemble_mean(e, rollout.observations) for e in (self.value, self.cost_value)
        ]
        return rollout, value

    @staticmethod
    def _ensemble_mean(ensemble, observations):
        """Every member's mean prediction [P, H + 1] (zeros before the first fit)."""
        shape = tf.shape(observations)
        flat = tf.reshape(observations, [-1, observations.shape[-1]])
        mean, _ = ensemble.member_moments(flat, tf.range(ensemble.members))
        values = tf.reshape(tf.reduce_mean(mean[..., 0], 0), shape[:2])
        return tf.where(ensemble.fitted, values, tf.zeros_like(values))

    def _model_samples(self, target: int):
        """Rollout chunks of ``rollout_starts`` paths until ``target`` model
        samples; returns the batch part (None when ``target`` <= 0: then one
        chunk only measures the disagreement) and metrics."""
        config = self.config
        if config.rollout_mode == "uncertainty":
            budget = tf.constant(float(self.uncertainty_budget.numpy()), tf.float32)
            length = config.max_rollout_length
        else:
            budget = tf.constant(np.inf, tf.float32)
            length = min(schedule_length(self.schedule.epoch, config.rollout_schedule),
                         config.max_rollout_length)  # fmt: skip
        start_states = self._start_state_sampler()
        parts, gathered, chunks, paths = [], 0, 0, 0
        weighted_disagreement = weights = 0.0
        # With no model samples wanted (all real), one chunk still measures the
        # disagreement that sets the next epoch's real samples.
        measure_only = target <= 0
        while (gathered < target or (measure_only and chunks == 0)) and chunks < 1000:
            start = start_states(config.rollout_starts)
            rollout, (value, cost_value) = self._rollout(tf.constant(start), self._seed(), budget)
            raw = rollout.alive.numpy()
            raw[:, length:] = 0.0  # The schedule's length (and nothing in uncertainty mode).
            # Path-major order; a path cut by the target bootstraps like any other.
            remaining = np.inf if measure_only else target - gathered
            before = np.cumsum(raw.reshape(-1)).reshape(raw.shape)
            alive = raw * (before <= remaining)
            in_chunk = before[:, 0] - raw[:, 0] < remaining  # Paths begun before the cut.
            steps = int(alive.sum())
            if steps == 0 and chunks > 0:
                break
            chunks += 1
            paths += int(in_chunk.sum())
            mean, weight = chunk_disagreement(alive, rollout.terminated.numpy() * alive,
                                              rollout.disagreement.numpy(), in_chunk)  # fmt: skip
            weighted_disagreement += mean * weight
            weights += weight
            if measure_only:
                break
            parts.append(self._rollout_fields(rollout, alive, value.numpy(), cost_value.numpy()))
            gathered += steps
        batch = None
        if parts:
            batch = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
        metrics = {
            "rollout/samples": float(gathered),
            "rollout/chunks": float(chunks),
            "rollout/disagreement": weighted_disagreement / max(weights, 1e-12),
            "rollout/mean_length": (weights if measure_only else gathered) / max(paths, 1),
        }
        return batch, metrics

    def _rollout_fields(self, rollout, alive, value, cost_value) -> dict:
        """One chunk's kept steps [P, H] -> batch fields (GAE along each path:
        a termination ends it without a bootstrap, a cut bootstraps)."""
        config = self.config
        terminated = rollout.terminated.numpy() * alive
        continues = 1.0 - terminated
        following_alive = np.concatenate([alive[:, 1:], np.zeros_like(alive[:, :1])], 1)
        trace = following_alive * continues
        rewards, costs = rollout.rewards.numpy() * alive, rollout.costs.numpy() * alive
        advantages = self._path_gae(
            rewards, value[:, :-1], value[:, 1:], continues, trace, config.discount, config.lambda_
        ).numpy()
        cost_advantages = self._path_gae(
            costs,
            cost_value[:, :-1],
            cost_value[:, 1:],
            continues,
            trace,
            config.cost_discount,
            config.cost_lambda,
        ).numpy()
        rows = alive.reshape(-1) > 0
        observations = rollout.observations.numpy()[:, :-1].reshape(-1, self.observation_size)
        return self._batch_fields(
            observations[rows], rollout.actions.numpy().reshape(-1, self.action_size)[rows],
            costs.reshape(-1)[rows], advantages.reshape(-1)[rows],
            cost_advantages.reshape(-1)[rows], value[:, :-1].reshape(-1)[rows],
            cost_value[:, :-1].reshape(-1)[rows],
        )  # fmt: skip

    def _update_margin(self, real: dict) -> dict:
        config = self.config
        episode_cost = float(real["cost"].mean()) * config.episode_length
        history = np.append(self.real_cost_history.numpy()[1:], episode_cost)
        self.real_cost_history.assign(history)
        if config.learn_margin and config.safety:
            self.margin.assign(updated_margin(float(self.margin.numpy()), float(history.mean()),
                                              config.cost_limit, config.episode_length,
                                              config.margin_learning_rate,
                                              config.margin_discount))  # fmt: skip
        return {"policy/margin": float(self.margin.numpy()),
                "policy/real_cost_per_episode": episode_cost}  # fmt: skip

    def _update_policy(self, batch: dict, real_cost_per_step: float) -> dict:
        """One CPO (TRPO) step on ``batch``; ``real_cost_per_step`` is the mean
        cost of this epoch's real steps (the constraint's, by default)."""
        config = self.config
        size = config.batch_size + self.num_envs
        count = len(batch["advantage"])
        if count > size:
            raise RuntimeError(f"a batch of {count} samples exceeds the compiled size {size}")

        def padded(value):
            pad = np.zeros((size - count, *value.shape[1:]), value.dtype)
            return tf.constant(np.concatenate([value, pad]))

        mask = np.zeros(size, np.float32)
        mask[:count] = 1.0
        batch_cost = float(batch["cost"].mean())
        constraint = constraint_value(
            real_cost_per_step if config.constraint_cost == "real" else batch_cost,
            config.cost_limit, config.episode_length, float(self.margin.numpy()),
        )  # fmt: skip
        # Remember this epoch's log_std for the start-state weights.
        log_stds = np.concatenate([self.epoch_log_std.numpy(), self.policy.log_std.numpy()[None]])
        self.epoch_log_std.assign(log_stds)
        result = self._policy_update(
            padded(batch["observation"]), padded(batch["action"]), padded(batch["advantage"]),
            padded(batch["cost_advantage"]), tf.constant(mask),
            tf.constant(constraint if config.safety else -np.inf, tf.float32),
        )  # fmt: skip
        self._acting_weights = None
        metrics = {f"policy/{k}": float(v) for k, v in result.items()}
        metrics["policy/constraint"] = constraint
        metrics["policy/batch_cost_per_step"] = batch_cost
        metrics["policy/real_cost_per_step"] = real_cost_per_step
        return metrics

    def _policy_update_impl(self, observation, action, advantage, cost_advantage, mask,
                            constraint):  # fmt: skip
        """One CPO (TRPO) step on a padded batch [B, ...] with mask [B]."""
        self.trace_counts["policy_update"] += 1
        config = self.config
        variables = self.policy.parameters
        theta = flatten(variables)
        weight = mask / tf.reduce_sum(mask)
        old_mean, old_log_std = self.policy.mean_and_log_std(observation)
        old_mean, old_log_std = tf.stop_gradient(old_mean), tf.stop_gradient(old_log_std)
        old_log_prob = tf.stop_gradient(self.policy.distribution(observation).log_prob(action))

        def surrogates(parameters):
            distribution = self.policy.distribution(observation, unflatten(parameters, variables))
            ratio = tf.exp(distribution.log_prob(action) - old_log_prob)
            loss = -tf.reduce_sum(weight * ratio * advantage)
            cost = tf.reduce_sum(weight * ratio * cost_advantage)
            return loss, cost

        def mean_kl(parameters):  # KL(pi_theta || pi_old), as the published code.
            mean, log_std = self.policy.mean_and_log_std(
                observation, unflatten(parameters, variables)
            )
            return tf.reduce_sum(weight * gaussian_kl(mean, log_std, old_mean, old_log_std))

        with tf.GradientTape(persistent=True) as tape:
            tape.watch(theta)
            loss, cost = surrogates(theta)
        loss_gradient, cost_gradient = tape.gradient(loss, theta), tape.gradient(cost, theta)
        del tape

        def fvp(vector):
            return fisher_vector_product(mean_kl, theta, vector, config.damping)

        step = cpo_step(loss_gradient, cost_gradient, constraint, fvp, config.target_kl,
                        config.cg_iterations, constrained=config.safety)  # fmt: skip

        def acceptable(candidate):
            new_loss, new_cost = surrogates(candidate)
            return accept_step(mean_kl(candidate), new_loss - loss, new_cost - cost, step.case,
                               constraint, config.target_kl)  # fmt: skip

        accepted, new_theta, steps = backtracking_line_search(
            acceptable, theta, step.step, config.line_search_steps, config.line_search_factor
        )
        assign_flat(variables, new_theta)
        new_loss, new_cost = surrogates(new_theta)
        return {
            "case": tf.cast(step.case, tf.float32),
            "multiplier": step.multiplier,
            "cost_multiplier": step.cost_multiplier,
            "accepted": tf.cast(accepted, tf.float32),
            "line_search_steps": tf.cast(steps, tf.float32),
            "kl": mean_kl(new_theta),
            "loss_change": new_loss - loss,
            "surrogate_cost_change": new_cost - cost,
            "log_std": tf.reduce_mean(self.policy.log_std),
        }

    def _fit_values(self, batch: dict) -> dict:
        metrics = {}
        fits = [("value", self.value, batch["return"])]
        # As the published code: the cost value is not trained on a batch without cost.
        if np.any(batch["cost"] > 0) or not bool(self.cost_value.fitted.numpy()):
            fits.append(("cost_value", self.cost_value, batch["cost_return"]))
        for name, ensemble, targets in fits:
            report = ensemble.fit(batch["observation"], targets[:, None])
            metrics[f"{name}/train_loss"] = report.train_loss
        return metrics

    # --- Checkpoints ---------------------------------------------------------

    def before_checkpoint(self) -> None:
        super().before_checkpoint()
        self.archive.before_checkpoint()
        self._saved_schedule.assign(self.schedule.as_array())

    def after_restore(self) -> None:
        super().after_restore()
        self.archive.after_restore()
        self.schedule = EpochSchedule.from_array(self._saved_schedule.numpy())
        self._acting_weights = None


@register_agent("cpo")
class CPOAgent(CMBPOAgent):
    """Model-free CPO: the same agent with ``use_model`` off (the published
    code's CPO HalfCheetah config: 35,000 real samples per update)."""

    @dataclasses.dataclass
    class Config(CMBPOAgent.Config):
        use_model: bool = False
        batch_size: int = 35_000


@register_agent("trpo")
class TRPOAgent(CMBPOAgent):
    """TRPO: model-free, without the cost constraint (cost is logged only;
    25,000 samples per update as the published code's TRPO config)."""

    @dataclasses.dataclass
    class Config(CMBPOAgent.Config):
        use_model: bool = False
        safety: bool = False
        batch_size: int = 25_000

    def __init__(self, observation_space, action_space, config=None, **kwargs):
        config = config if config is not None else self.Config()
        if getattr(config, "safety", False):
            raise ConfigError("trpo optimizes return without a cost constraint; use "
                              "--agent=cpo (or cmbpo) for the constrained method")  # fmt: skip
        super().__init__(observation_space, action_space, config, **kwargs)
