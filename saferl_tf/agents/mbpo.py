"""MBPOAgent and VaGraMAgent: SAC on real and model data (Janner et al. 2019),
the model trained by maximum likelihood or by the value-gradient weighted loss
(Voelcker et al., ICLR 2022), and SAC-Lagrangian with ``--safety``.

Every environment step (after ``exploration_steps`` steps of the initial
policy's samples)::

    every model_train_every steps: refit the ensemble on the real data, then
        roll ``rollouts_per_step * model_train_every`` replay states forward
        for the scheduled length (``rollout_schedule``) into the model buffer
    sac_updates_per_step SAC updates, each batch drawn whole from the model
        buffer with probability p (``model_share_schedule``), else from the
        real data (the VaGraM code's per-batch draw)

Schedules are [min epoch, max epoch, min value, max value] over epochs of
``epoch_length`` steps, linear in between (MBPO's). ``model_loss``: "mle" (a
probabilistic ensemble, Gaussian likelihood), "mse" (deterministic, squared
error), "vagram" (deterministic, bounded VaGraM; the MSE is added for the first
``mse_warmup_fits`` fits, as the published code, or always with ``add_mse``)
or "vagram_unbounded". The
VaGraM gradients come from the SAC learner's two critics and two targets at
the time of each fit (``saferl_tf.models.vagram``).

With ``safety``, a cost critic and a ``ConstraintPenalty`` (``penalty``, as
LAMBDA's) join the SAC update: the actor's loss adds penalty(g), g = mean
Q_c(s, a ~ pi) - d with d = cost_limit / episode_length / (1 - cost_discount),
the discounted cost of spending the budget evenly. ``multiplier_signal`` says
what moves the multiplier: "measured_cost" (the default) steps it once per
real environment step after exploration on the cost actually incurred, g_m =
(r - cost_limit / episode_length) / (1 - cost_discount) with r the cost per
step over the last ``episode_length`` such steps of the real data (OmniSafe's
``SACLag`` uses the logged episode cost); "cost_critic" steps it in every SAC
update on the critic's g (Ha et al. 2020), which the actor biases low by
choosing the actions the critic underrates (docs/BENCHMARKS.md). Cost in model
rollouts comes from the task's known function where it has one, else the
model learns it.

Call sequence (the ``Agent`` contract)::

    agent = VaGraMAgent(observation_space, action_space, VaGraMAgent.Config(), task=task)
    action = agent.act(observation [N, O], explore, is_first [N])
    agent.observe(transition); metrics = agent.update()

Registered as ``mbpo`` (MLE), ``vagram`` and ``sac`` (``use_model`` off).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from saferl_tf.agents.base import Agent, register_agent
from saferl_tf.config import AgentConfig
from saferl_tf.data.archive import TransitionArchive
from saferl_tf.envs.registry import TaskFunctions
from saferl_tf.errors import ConfigError
from saferl_tf.models.dynamics import DynamicsEnsemble
from saferl_tf.models.model_env import ModelEnv
from saferl_tf.models.vagram import ValueGradientCache, vagram_member_loss
from saferl_tf.rl.lagrangian import discounted_cost_limit, penalty_from_config
from saferl_tf.rl.sac import SACLearner
from saferl_tf.rl.schedules import linear_schedule, schedule_length
from saferl_tf.training.timing import PhaseTimer

MODEL_LOSSES = ("mle", "mse", "vagram", "vagram_unbounded")
MULTIPLIER_SIGNALS = ("measured_cost", "cost_critic")


@register_agent("mbpo")
class MBPOAgent(Agent):
    @dataclasses.dataclass
    class Config(AgentConfig):
        use_model: bool = True
        model_loss: str = "mle"
        episode_length: int = 1000  # Environment steps the cost limit refers to.
        # SAC (the VaGraM code's Hopper settings).
        hidden_units: int = 1024
        hidden_layers: int = 2
        normalize_features: bool = True
        batch_size: int = 256
        discount: float = 0.99
        tau: float = 0.005
        target_update_every: int = 4
        actor_learning_rate: float = 3e-5
        critic_learning_rate: float = 3e-4
        alpha_learning_rate: float = 3e-4
        initial_alpha: float = 0.1
        target_entropy: float | None = -1.0  # None: minus the action size.
        sac_updates_per_step: int = 20
        collect_with_mean: bool = True  # The published code's real data: the mean action.
        # Model.
        members: int = 7
        elites: int = 5
        model_units: int = 200
        model_layers: int = 4
        model_learning_rate: float = 1e-3
        model_weight_decay: float = 5e-5
        model_batch_size: int = 1024
        model_holdout_ratio: float = 0.2
        model_patience: int = 10
        model_max_epochs: int = 1000
        # Gradient steps per fit at most (0: no limit); bounds a fit's cost as the data grow.
        model_max_steps: int = 0
        mse_warmup_fits: int = 4
        add_mse: bool = False  # VaGraM with the MSE added in every fit, not the warm-up only.
        model_train_every: int = 250
        # Rollouts and the data mix; schedules over epochs of epoch_length steps.
        epoch_length: int = 1000
        exploration_steps: int = 10_000
        rollouts_per_step: int = 400
        rollout_schedule: tuple[int, int, int, int] = (20, 150, 1, 5)
        model_share_schedule: tuple[float, float, float, float] = (0, 20, 0, 0.95)
        model_retain_epochs: int = 1
        # Safety (SAC-Lagrangian).
        cost_discount: float = 0.99
        multiplier_signal: str = "measured_cost"  # Or "cost_critic" (module docstring).
        penalty: str = "augmented_lagrangian"
        initial_multiplier: float = 0.0
        initial_penalty: float = 1e-3
        penalty_growth: float = 0.0
        pid_kp: float = 0.05
        pid_ki: float = 1e-3
        pid_kd: float = 0.01

    @classmethod
    def wants_task_observation(cls, config) -> bool:
        return config.use_model

    def __init__(self, observation_space, action_space, config=None, **kwargs):
        super().__init__(observation_space, action_space, config, **kwargs)
        config = self.config
        self._require_box_actions_and_vector_observations()
        if config.model_loss not in MODEL_LOSSES:
            raise ConfigError(f"unknown model_loss {config.model_loss!r}; accepted: "
                              f"{', '.join(MODEL_LOSSES)}")  # fmt: skip
        if config.model_max_steps < 0:
            raise ConfigError(f"model_max_steps must be >= 0 (0: no limit), "
                              f"got {config.model_max_steps}")  # fmt: skip
        if config.multiplier_signal not in MULTIPLIER_SIGNALS:
            raise ConfigError(f"unknown multiplier_signal {config.multiplier_signal!r}; "
                              f"accepted: {', '.join(MULTIPLIER_SIGNALS)}")  # fmt: skip
        if config.model_retain_epochs < 1:
            raise ConfigError(f"model_retain_epochs must be >= 1, got {config.model_retain_epochs}")
        if config.use_model and config.action_repeat != 1:
            raise ConfigError("the model describes one environment step: use --action_repeat=1")
        self.observation_size = int(observation_space.shape[0])
        self.action_size = int(np.prod(action_space.shape))
        penalty = None
        if config.safety:
            penalty = self.make_penalty(config)
        discounted_limit = discounted_cost_limit(
            config.cost_limit,
            config.episode_length,
            action_repeat=1,
            cost_discount=config.cost_discount,
        )
        self.learner = SACLearner(
            self.observation_size, self.action_size, hidden_units=config.hidden_units,
            hidden_layers=config.hidden_layers, normalize_features=config.normalize_features,
            discount=config.discount, tau=config.tau,
            target_update_every=config.target_update_every,
            actor_learning_rate=config.actor_learning_rate,
            critic_learning_rate=config.critic_learning_rate,
            alpha_learning_rate=config.alpha_learning_rate, initial_alpha=config.initial_alpha,
            target_entropy=config.target_entropy, penalty=penalty,
            cost_discount=config.cost_discount, discounted_cost_limit=discounted_limit,
            multiplier_from_critic=config.multiplier_signal == "cost_critic",
        )  # fmt: skip
        self.measures_cost = config.safety and config.multiplier_signal == "measured_cost"
        if self.measures_cost:
            self._step_multiplier = tf.function(self.learner.penalty.update)
        fields = {
            "observation": ((self.observation_size,), np.float32),
            "action": ((self.action_size,), np.float32),
            "reward": ((), np.float32),
            "cost": ((), np.float32),
            "next_observation": ((self.observation_size,), np.float32),
            "terminated": ((), np.float32),
        }
        self.real = TransitionArchive(config.replay_capacity, fields, name="real")
        if config.use_model:
            self._build_model()
        self.model_fits = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.random = tf.random.Generator.from_seed(self.seed + 13)
        self._sac_step = tf.function(self.learner.train, jit_compile=config.jit)
        self._acting = tf.function(self._acting_impl, jit_compile=config.jit)

    @staticmethod
    def make_penalty(config):
        """The constraint's penalty (as ``LambdaAgent.make_penalty``)."""
        return penalty_from_config(config)

    def _build_model(self) -> None:
        config, task = self.config, self.task
        learn = ["reward"] if task is None or task.reward is None else []
        if config.safety and (task is None or task.cost is None):
            learn.append("cost")
        if task is None:
            learn.append("terminal")
        self.dynamics = DynamicsEnsemble(
            self.observation_size, self.action_size, learn=tuple(learn),
            members=config.members, elites=config.elites, hidden_units=config.model_units,
            hidden_layers=config.model_layers, activation="swish",
            probabilistic=config.model_loss == "mle", weight_decay=config.model_weight_decay,
            learning_rate=config.model_learning_rate, batch_size=config.model_batch_size,
            holdout_ratio=config.model_holdout_ratio, max_holdout=10**9,
            max_epochs=config.model_max_epochs, patience=config.model_patience,
            jit=config.jit, seed=self.seed + 3,
        )  # fmt: skip
        self.ensemble = self.dynamics.ensemble  # Tracked by the checkpoint.
        cost = getattr(task, "cost", None)
        if not config.safety:  # Cost is only logged: rollouts need none.
            cost = _zero_cost
        known = TaskFunctions(reward=getattr(task, "reward", None), cost=cost,
                              terminal=getattr(task, "terminal", None))  # fmt: skip
        self.model_env = ModelEnv(self.dynamics, known, propagation="random",
                                  sample=config.model_loss == "mle", jit=config.jit)  # fmt: skip
        self._rollout = tf.function(self._rollout_impl, jit_compile=config.jit)
        self.gradient_cache = ValueGradientCache()
        # One loss object for every fit: the ensemble compiles its steps once per loss.
        self.vagram_loss = _VaGraMLoss(self.dynamics, bounded=config.model_loss == "vagram")
        self.model_buffer = None  # Regenerated at each fit; not in checkpoints.

    # --- Acting --------------------------------------------------------------

    def _acting_impl(self, observation, seed, sample):
        action, _ = self.learner.sample(observation, seed)
        return tf.where(sample, action, self.learner.mean_action(observation))

    def _act(self, observation, explore, is_first):
        exploring = self.real.added < self.config.exploration_steps
        sample = explore and (exploring or not self.config.collect_with_mean)
        seed = tf.cast(self.random.make_seeds(1)[:, 0], tf.int32)
        action = self._acting(tf.constant(observation, tf.float32), seed, tf.constant(sample))
        return self._to_space(action.numpy())

    def _observe(self, transition) -> None:
        learning = self.real.added >= self.config.exploration_steps
        self.real.add(
            observation=np.asarray(transition.observation, np.float32),
            action=self._from_space(np.asarray(transition.action, np.float32)),
            reward=np.asarray(transition.reward, np.float32),
            cost=np.asarray(transition.cost, np.float32),
            next_observation=np.asarray(transition.next_observation, np.float32),
            terminated=np.asarray(transition.terminated, np.float32),
        )  # fmt: skip
        if self.measures_cost and learning:
            # One multiplier step per environment step, each on the rate after its cost.
            count = np.asarray(transition.cost).size
            for index in range(count):
                constraint = self.measured_constraint(newest_skipped=count - 1 - index)
                self._step_multiplier(tf.constant(constraint, tf.float32))

    def measured_cost_rate(self, newest_skipped: int = 0) -> float:
        """The cost per step of the last ``episode_length`` real steps taken after
        exploration (fewer early on; 0 before any), leaving out the newest
        ``newest_skipped``. The real data are in the checkpoint, so a resumed run
        measures the same steps."""
        config = self.config
        after = self.real.added - config.exploration_steps - newest_skipped
        count = min(config.episode_length, max(after, 0))
        if count == 0:
            return 0.0
        costs = self.real.newest_of("cost", count + newest_skipped)[:count]
        return float(np.mean(costs, dtype=np.float64))

    def measured_constraint(self, newest_skipped: int = 0) -> float:
        """g_m in cost-value units, as the critic's g: (rate - limit per step) / (1 - gamma_c)."""
        config = self.config
        per_step = config.cost_limit / config.episode_length
        rate = self.measured_cost_rate(newest_skipped)
        return (rate - per_step) / (1.0 - config.cost_discount)

    # --- Updates -------------------------------------------------------------

    def _update(self) -> dict:
        config = self.config
        steps = self.real.added
        if steps < config.exploration_steps or steps < config.batch_size:
            return {}
        metrics: dict = {}
        timer = PhaseTimer(metrics)
        after = steps - config.exploration_steps
        # The published code evaluates its schedules at epoch + 1 (epochs from 0).
        epoch = after // config.epoch_length + 1
        if config.use_model and (
            self.model_buffer is None or after % config.model_train_every == 0
        ):
            with timer("model_fit"):
                metrics.update(self._fit_model())
            with timer("rollouts"):
                metrics.update(self._fill_model_buffer(epoch))
        share = linear_schedule(epoch, config.model_share_schedule)
        if not config.use_model or self.model_buffer is None:
            share = 0.0
        for _ in range(config.sac_updates_per_step):
            if self.control.should_stop():
                break
            if self.rng.uniform() < share:
                rows = self.rng.integers(0, len(self.model_buffer["reward"]), config.batch_size)
                batch = {key: value[rows] for key, value in self.model_buffer.items()}
            else:
                batch = self.real.sample(config.batch_size, self.rng)
            seed = tf.cast(self.random.make_seeds(1)[:, 0], tf.int32)
            with timer("sac_updates"):  # Per environment step (all its SAC updates).
                result = self._sac_step({k: tf.constant(v) for k, v in batch.items()}, seed)
            metrics.update(result)
        metrics["sac/model_share"] = share
        if self.measures_cost:
            metrics["lagrangian/measured_cost_rate"] = self.measured_cost_rate()
            metrics["lagrangian/measured_constraint"] = self.measured_constraint()
            # The multiplier as it is now, after this step's measurement.
            metrics.update(
                {f"lagrangian/{k}": v for k, v in self.learner.penalty.metrics().items()}
            )
        # One row of metrics per model_train_every steps (the model's schedule),
        # not one per environment step.
        return metrics if after % config.model_train_every == 0 else {}

    def _fit_model(self) -> dict:
        config = self.config
        data = self.real.fields()
        given = {"rewards": data["reward"], "costs": data["cost"],
                 "terminals": data["terminated"]}  # fmt: skip
        extras = {}
        if config.model_loss.startswith("vagram"):
            version = (int(self.learner.updates.numpy()), self.real.added)
            gradients = self.gradient_cache.get(version, data["next_observation"],
                                                self.learner.value_functions())  # fmt: skip
            warm = config.add_mse or int(self.model_fits.numpy()) < config.mse_warmup_fits
            self.vagram_loss.mse_weight.assign(1.0 if warm else 0.0)
            extras = {"loss": self.vagram_loss, "extras": gradients}
        max_steps = config.model_max_steps or None
        report = self.dynamics.fit(data["observation"], data["action"], data["next_observation"],
                                   max_steps=max_steps, **given, **extras)  # fmt: skip
        self.model_fits.assign_add(1)
        return report.metrics("model/")

    def _rollout_impl(self, start, seed, length):
        def policy(observation, step_seed):
            return self.learner.sample(observation, step_seed)[0]

        return self.model_env.rollout_policy(start, policy, length, seed)

    def _fill_model_buffer(self, epoch: int) -> dict:
        config = self.config
        length = schedule_length(epoch, config.rollout_schedule)
        count = config.rollouts_per_step * config.model_train_every
        data = self.real.fields()
        starts = data["observation"][self.rng.integers(0, len(data["reward"]), count)]
        seed = tf.cast(self.random.make_seeds(1)[:, 0], tf.int32)
        rollout = self._rollout(tf.constant(starts), seed, length)
        alive = rollout.alive.numpy().reshape(-1) > 0
        observations = rollout.observations.numpy()
        new = {
            "observation": observations[:, :-1].reshape(-1, self.observation_size)[alive],
            "action": rollout.actions.numpy().reshape(-1, self.action_size)[alive],
            "reward": rollout.rewards.numpy().reshape(-1)[alive],
            "cost": rollout.costs.numpy().reshape(-1)[alive],
            "next_observation": observations[:, 1:].reshape(-1, self.observation_size)[alive],
            "terminated": rollout.terminated.numpy().reshape(-1)[alive],
        }
        # model_retain_epochs epochs of rollouts, as mbrl-lib's MBPO; with refits
        # rarer than epochs, one fit's (its ceil(epoch / refit interval) = 1).
        steps = max(config.epoch_length, config.model_train_every)
        capacity = length * config.rollouts_per_step * steps * config.model_retain_epochs
        if self.model_buffer is None:
            merged = new
        else:
            merged = {key: np.concatenate([self.model_buffer[key], value])[-capacity:]
                      for key, value in new.items()}  # fmt: skip
        self.model_buffer = {key: value.astype(np.float32) for key, value in merged.items()}
        return {"rollout/length": float(length), "rollout/samples": float(alive.sum()),
                "rollout/buffer": float(len(merged["reward"]))}  # fmt: skip

    # --- Checkpoints ---------------------------------------------------------

    def before_checkpoint(self) -> None:
        super().before_checkpoint()
        self.real.before_checkpoint()

    def after_restore(self) -> None:
        super().after_restore()
        self.real.after_restore()


def _zero_cost(observation, action, next_observation):
    return tf.zeros_like(observation[..., 0])


class _VaGraMLoss:
    """The ensemble's ``MemberLoss`` for VaGraM: value-gradient weighted errors
    of the state change and the squared error of the reward (zero when the
    task's reward is known); other learned outputs (cost, terminal) get their
    squared error."""

    def __init__(self, dynamics: DynamicsEnsemble, bounded: bool):
        self.size = dynamics.observation_size
        self.learns_reward = "reward" in dynamics.learned
        self.bounded = bounded
        # 1 adds the MSE of every output (the published code's warm-up fits), 0 not;
        # a variable, so switching it does not retrace the compiled steps.
        self.mse_weight = tf.Variable(0.0, trainable=False, name="vagram_mse_weight")

    def __call__(self, prediction, target, gradients):
        size = self.size
        end = size + 1 if self.learns_reward else size
        core_prediction, core_target = prediction[..., :end], target[..., :end]
        if not self.learns_reward:  # A zero reward column: no reward term.
            zeros = tf.zeros_like(core_prediction[..., :1])
            core_prediction = tf.concat([core_prediction, zeros], -1)
            core_target = tf.concat([core_target, zeros], -1)
        core = vagram_member_loss(core_prediction, core_target, gradients, self.bounded)
        mse = tf.reduce_mean(tf.square(core_prediction - core_target), axis=[1, 2])
        rest = prediction[..., end:] - target[..., end:]
        return (core + self.mse_weight * mse
                + tf.reduce_mean(tf.reduce_sum(tf.square(rest), -1), axis=1))  # fmt: skip


@register_agent("vagram")
class VaGraMAgent(MBPOAgent):
    """MBPO whose deterministic ensemble is trained with bounded VaGraM."""

    @dataclasses.dataclass
    class Config(MBPOAgent.Config):
        model_loss: str = "vagram"


@register_agent("sac")
class SACAgent(MBPOAgent):
    """SAC (SAC-Lagrangian with ``--safety``): the same agent without a model."""

    @dataclasses.dataclass
    class Config(MBPOAgent.Config):
        use_model: bool = False
        exploration_steps: int = 5000
        collect_with_mean: bool = False  # Standard SAC samples its actions.
