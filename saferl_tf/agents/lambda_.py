"""LambdaAgent: LAMBDA (As, Usmanova, Curi, Krause, ICLR 2022).

Two halves, as DreamerV3's WorldModel and ImagBehavior:
``saferl_tf.models.world_model.WorldModel`` (a recurrent state-space model
learned from replayed sequences, its reward, cost and terminal heads, and a
SWAG posterior over the weights that imagination uses) and
``saferl_tf.rl.safe_actor_critic.SafeActorCritic`` (actor, reward and safety
critics, and the constraint's penalty). Each behaviour update imagines
``horizon`` steps from every posterior state of the batch under each of
``posterior_samples`` weight samples; the actor and the critic learn from the
sample with the highest value (optimism), the safety critic from the sample
with the highest cost value (pessimism), and the penalty of g = mean(V_c) - d
enters the actor's loss. This class owns the schedule, acting and the
compiled steps.

Call sequence (the ``Agent`` contract)::

    agent = LambdaAgent(observation_space, action_space, LambdaAgent.Config())
    action = agent.act(observation [N, ...], explore, is_first [N])
    agent.observe(transition)
    metrics = agent.update()   # model and actor-critic updates on the schedule

``update`` checks the schedule (``warmup_steps`` random environment steps,
then ``pretrain_updates`` model updates, then ``train_steps`` updates every
``train_every`` environment steps) and calls two compiled steps, traced once:
``_model_step`` (``WorldModel.train``) and ``_behavior_step``
(``SafeActorCritic.train``). Both are XLA-compiled with ``jit``, except the
pixel model step on a machine without a GPU (see ``xla_cpu_convolutions``).

Subclassing: set ``behavior_class`` (or ``world_model_class``) to a subclass
overriding one piece, e.g. ``optimistic_index`` for how posterior samples are
chosen, or override ``make_penalty`` for another constraint penalty::

    class FixedMultiplierLambda(LambdaAgent):
        @staticmethod
        def make_penalty(config):
            return MyFixedMultiplier(0.5)   # a saferl_tf.rl.lagrangian.ConstraintPenalty

``cost_limit`` is the budget per ``episode_length`` environment steps (25 per
1,000 in the paper). Imagined costs are the cost head's probability times
``action_repeat`` (the environment sums cost over repeated steps), and the
safety critic predicts their discounted sum, so the limit is converted once
to that scale: d = (cost_limit / episode_length) * action_repeat /
(1 - safety_discount), the discounted cost of spending the budget evenly.
The constraint is g = mean(V_c^lambda) - d over every start state and imagined
position of the most pessimistic posterior sample.

Where this differs from the published code (yardenas/la-mbda), on purpose:
the lambda-returns run in forward time order (see ``saferl_tf.rl.returns``);
the SWAG low-rank term draws one normal vector for all weights (the published
code draws one per variable, which is not the SWAG posterior); and the
published code compared the raw limit with the discounted cost value.
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import tensorflow as tf
from gymnasium import spaces

from saferl_tf.agents.base import Agent, preset_names, register_agent
from saferl_tf.config import AgentConfig, build_config
from saferl_tf.errors import ConfigError
from saferl_tf.models.networks import seeded_initializers
from saferl_tf.models.rssm import RSSMState
from saferl_tf.models.world_model import WorldModel
from saferl_tf.rl.lagrangian import ConstraintPenalty, penalty_from_config
from saferl_tf.rl.safe_actor_critic import SafeActorCritic


@register_agent("lambda")
class LambdaAgent(Agent):
    @dataclasses.dataclass
    class Config(AgentConfig):
        observation: str = "pixels"
        action_repeat: int = 2
        # World model.
        deter_size: int = 200
        stoch_size: int = 30
        rssm_hidden: int = 200
        cnn_depth: int = 32
        dense_units: int = 400
        encoder_layers: int = 3  # Vector observations.
        decoder_layers: int = 3
        head_layers: int = 2  # Reward, cost and terminal heads.
        kl_balance: float = 0.8
        free_nats: float = 3.0
        unsafe_weight: float = 100.0  # Weight of the unsafe (cost >= 1) log-likelihood.
        # The weighting inflates the cost head's probabilities (a weighted logistic
        # fit's logit is shifted by about log(unsafe_weight)); true: imagination
        # uses logit - log(unsafe_weight), the prior correction. The published code
        # does not (false), and its imagined cost then runs several times the real.
        correct_unsafe_weight: bool = False
        model_learning_rate: tuple[float, float] = (1e-4, 5e-4)  # Cyclic, low to high.
        learning_rate_step_size: int = 200
        adam_epsilon: float = 1e-5  # Every optimizer's, as the published code's.
        # Vector observations: normalized by running statistics, updated at the end
        # of each training episode (an exponential average, weight 1 - 0.99 per
        # episode, as the published code; without its zero bias), clipped to ±clip.
        normalize_observations: bool = True
        observation_clip: float = 10.0
        model_clip_norm: float = 100.0
        # SWAG posterior.
        swag_burn_in: int = 500
        swag_period: int = 200
        swag_decay: float = 0.8
        swag_max_columns: int = 20
        swag_scale: float = 1.0
        # Imagination samples weights once this many snapshots exist (the published
        # code waits for all swag_max_columns); before, it uses the current weights.
        swag_min_snapshots: int = 20
        posterior_samples: int = 5
        # Behaviour.
        batch_size: int = 32
        sequence_length: int = 50
        horizon: int = 15
        discount: float = 0.99
        lambda_: float = 0.95
        safety_discount: float = 0.995
        safety_lambda: float = 0.95
        actor_layers: int = 4
        critic_layers: int = 3
        actor_learning_rate: float = 8e-5
        critic_learning_rate: float = 8e-5
        safety_critic_learning_rate: float = 2e-4
        actor_clip_norm: float = 5.0
        critic_clip_norm: float = 1.0
        safety_critic_clip_norm: float = 50.0
        # Behaviour updates between copies of the critics into their targets, which
        # only the critics' own regression targets use (the published code copies
        # every 1,000 environment steps: once per round of 100 updates).
        target_update_every: int = 100
        # Clip imagined cost returns to [0, action_repeat / (1 - safety_discount)],
        # what a per-step cost in [0, 1] can add up to. The published code does not.
        clip_cost_returns: bool = False
        # The constraint's penalty: "augmented_lagrangian" (the paper's) or "pid"
        # (Stooke et al. 2020). Augmented Lagrangian: the multiplier's start, the
        # quadratic penalty c's start and its growth factor per update. PID: gains
        # on the constraint g per behaviour update; the multiplier starts at
        # initial_multiplier. The paper's c starts at 5e-9 (preset paper_penalty),
        # which leaves the multiplier negligible for hundreds of thousands of
        # updates (docs/BENCHMARKS.md); with c = 1e-3 the multiplier moves by
        # c * g per update and the constraint acts within a few rounds.
        penalty: str = "augmented_lagrangian"
        initial_multiplier: float = 1e-6
        initial_penalty: float = 1e-3
        penalty_growth: float = 1e-5
        pid_kp: float = 0.05
        pid_ki: float = 1e-3
        pid_kd: float = 0.01
        episode_length: int = 1000  # Environment steps the cost limit refers to.
        # Schedule, in environment steps.
        warmup_steps: int = 5000
        pretrain_updates: int = 100
        train_every: int = 1000
        train_steps: int = 100
        mixed_precision: bool = False
        # XLA's CPU convolutions measured 3.5-5x slower than graph mode's oneDNN
        # kernels (docs/BENCHMARKS.md): without a GPU the pixel model update runs
        # in graph mode unless this is true. Everything else follows ``jit``.
        xla_cpu_convolutions: bool = False
        replay_capacity: int = 1_000_000

    # The two halves; a subclass swaps either with a class of the same interface.
    world_model_class = WorldModel
    behavior_class = SafeActorCritic

    def __init__(self, observation_space, action_space, config=None, **kwargs):
        super().__init__(observation_space, action_space, config, **kwargs)
        config = self.config
        if not isinstance(action_space, spaces.Box):
            raise ConfigError(f"LambdaAgent needs a Box action space, got {action_space}")
        self._check_config(config)
        self.action_size = int(np.prod(action_space.shape))
        self._episode_observations: list[list[np.ndarray]] = [[] for _ in range(self.num_envs)]
        # Layers take Keras's global dtype policy when they are made: set it for
        # this agent's networks only. bfloat16 keeps float32's range, so no loss
        # scaling is needed; variables and the RSSM state stay float32.
        previous_policy = keras.mixed_precision.dtype_policy()
        if config.mixed_precision:
            keras.mixed_precision.set_dtype_policy("mixed_bfloat16")
        try:
            with seeded_initializers(self.seed):
                self.world_model = self.world_model_class(
                    observation_space, self.action_size, config
                )
                self.behavior = self.behavior_class(
                    self.world_model.feature_size, self.action_size, config,
                    self.make_penalty(config),
                )  # fmt: skip
        finally:
            keras.mixed_precision.set_dtype_policy(previous_policy)
        self.random = tf.random.Generator.from_seed(self.seed)
        self.last_train_step = tf.Variable(-1, dtype=tf.int64, trainable=False)
        # Updates still due in the current round; a stop between updates keeps
        # the count in the checkpoint, so a resumed run finishes the round.
        self.remaining_updates = tf.Variable(0, dtype=tf.int64, trainable=False)
        jit = config.jit
        has_gpu = bool(tf.config.list_physical_devices("GPU"))
        pixels = self.world_model.pixels
        self.model_jit = jit and (not pixels or has_gpu or config.xla_cpu_convolutions)
        self._model_step = tf.function(self._model_step_impl, jit_compile=self.model_jit)
        self._behavior_step = tf.function(self._behavior_step_impl, jit_compile=jit)
        self._policy_step = tf.function(self._policy_step_impl, jit_compile=jit)
        self.trace_counts = {"model": 0, "behavior": 0, "policy": 0}
        self._acting_state = {True: None, False: None}

    # Measured at the paper's size on the project's 2-core CPU (docs/BENCHMARKS.md,
    # tools/bench_lambda.py): seconds per (model, actor-critic) update pair.
    _PAPER_CPU_SECONDS = {"vector": 0.57 + 29.0, "pixels": 16.5 + 36.5}

    @staticmethod
    def _imagination_work(config) -> float:
        """Multiply-adds of one actor-critic update, up to a constant: imagined
        states times the square of the network width."""
        states = config.batch_size * config.sequence_length * config.posterior_samples
        return states * config.horizon * max(config.dense_units, config.deter_size) ** 2

    @classmethod
    def cpu_hint(cls, config) -> str | None:
        cpu = build_config(cls.Config, preset_names(cls), "vector,cpu")
        work = cls._imagination_work(config)
        if work <= 4 * cls._imagination_work(cpu):
            return None
        paper = cls._imagination_work(cls.Config())
        seconds = cls._PAPER_CPU_SECONDS[config.observation] * work / paper
        rate = config.train_every / (config.train_steps * seconds)
        return (
            f"no GPU is visible and this LAMBDA config is sized for one: expect about "
            f"{rate:.2g} environment steps/s on a 2-core CPU ({seconds:.0f} s per update, "
            f"{config.train_steps} updates every {config.train_every} steps; "
            "docs/BENCHMARKS.md). On a CPU use --config=vector,cpu (37 steps/s early in a "
            "run here) or, for a first run, --config=hazard on saferl_PointHazard-v0"
        )

    # --- Building ------------------------------------------------------------

    @staticmethod
    def make_penalty(config) -> ConstraintPenalty:
        """The constraint's penalty (``saferl_tf.rl.lagrangian``); override to try
        another, e.g. a fixed multiplier."""
        return penalty_from_config(config)

    @staticmethod
    def _check_config(config) -> None:
        positive = ("batch_size", "sequence_length", "horizon", "posterior_samples",
                    "train_every", "train_steps", "episode_length", "dense_units")  # fmt: skip
        for name in positive:
            if getattr(config, name) < 1:
                raise ConfigError(f"LambdaAgent config {name} must be >= 1, got "
                                  f"{getattr(config, name)}")  # fmt: skip
        if config.sequence_length < 2:
            raise ConfigError("LambdaAgent config sequence_length must be >= 2")
        low, high = config.model_learning_rate
        if not 0 < low <= high:
            raise ConfigError(f"model_learning_rate must be (low, high) with 0 < low <= high, "
                              f"got {config.model_learning_rate}")  # fmt: skip

    def _observe(self, transition) -> None:
        """Feeds each finished training episode [o_0, ..., o_T] to the world model's
        observation statistics."""
        if not self.world_model.normalizes_observations:
            return
        ended = np.asarray(transition.terminated) | np.asarray(transition.truncated)
        for index in range(len(ended)):
            episode = self._episode_observations[index]
            if not episode:
                episode.append(np.asarray(transition.observation[index]).reshape(-1))
            episode.append(np.asarray(transition.next_observation[index]).reshape(-1))
            if ended[index]:
                self.world_model.record_episode(np.stack(episode))
                episode.clear()

    # --- Acting --------------------------------------------------------------

    def _policy_step_impl(self, state, previous_action, observation, is_first, explore, seed):
        self.trace_counts["policy"] += 1
        seeds = tf.random.experimental.stateless_split(seed, 2)
        state = self.world_model.observe_step(state, previous_action, observation, is_first,
                                              seeds[0])  # fmt: skip
        distribution, mean = self.behavior.action_distribution(state.features())
        sample = distribution.sample(seed=seeds[1])
        action = tf.where(explore, sample, tf.tanh(mean))
        return state, action

    def _act(self, observation, explore, is_first):
        batch = observation.shape[0]
        env_steps = self.num_steps * self.config.action_repeat
        if explore and env_steps < self.config.warmup_steps:
            unit = self.rng.uniform(-1.0, 1.0, (batch, self.action_size))
            action = self._to_space(unit)
            self._acting_state[explore] = None  # The model starts fresh after warm-up.
            return action
        carried = self._acting_state[explore]
        if carried is None or carried[0].deter.shape[0] != batch:
            carried = (self.world_model.rssm.initial(batch), tf.zeros([batch, self.action_size]))
            is_first = np.ones(batch, bool)
        state, previous = carried
        seed = tf.cast(self.random.make_seeds(1)[:, 0], tf.int32)  # TFP wants int32 seeds.
        state, action = self._policy_step(
            state, previous, tf.constant(observation), tf.constant(is_first),
            tf.constant(explore), seed,
        )  # fmt: skip
        self._acting_state[explore] = (state, action)
        return self._to_space(action.numpy())

    # --- Updates -------------------------------------------------------------

    def _update(self) -> dict:
        config = self.config
        env_steps = self.num_steps * config.action_repeat
        if env_steps < config.warmup_steps:
            return {}
        last = int(self.last_train_step.numpy())
        total = config.pretrain_updates if last < 0 else config.train_steps
        remaining = int(self.remaining_updates.numpy())  # > 0: a round was interrupted.
        if remaining == 0:
            if last >= 0 and env_steps - last < config.train_every:
                return {}
            remaining = total
        metrics: dict = {}
        while remaining > 0 and not self.control.should_stop():
            batch = self._sample_batch()
            if batch is None:
                break  # Too little data for one sequence yet; try again later.
            metrics = self.train_batch(batch, behavior=last >= 0)
            remaining -= 1
            self.control.report(total - remaining, total)
        self.remaining_updates.assign(remaining)
        if remaining == 0:
            self.last_train_step.assign(env_steps)
        return metrics

    def _sample_batch(self):
        config = self.config
        try:
            batch = self.replay.sample_sequences(config.batch_size, config.sequence_length - 1)
        except ValueError:
            return None
        return self._batch_tensors(batch)

    def _batch_tensors(self, batch) -> dict:
        """Replay sequences of L - 1 transitions -> L observations and aligned targets."""
        observation = np.concatenate([batch["observation"], batch["next_observation"][:, -1:]], 1)
        actions = self._from_space(batch["action"])
        previous = np.concatenate([np.zeros_like(actions[:, :1]), actions], 1)
        is_first = np.zeros(observation.shape[:2], bool)
        is_first[:, 0] = True  # Each window starts from a fresh state.
        return {
            "observation": tf.constant(observation),
            "previous_action": tf.constant(previous),
            "is_first": tf.constant(is_first),
            "reward": tf.constant(batch["reward"], tf.float32),
            "cost": tf.constant(batch["cost"], tf.float32),
            "terminated": tf.constant(batch["terminated"], tf.float32),
        }

    def train_batch(self, batch: dict, behavior: bool = True) -> dict:
        """One world-model update and (with ``behavior``) one behaviour update on
        ``batch`` (see ``_batch_tensors``). Pre-training rounds train the model
        alone, as the published code."""
        seeds = tf.cast(self.random.make_seeds(2), tf.int32)  # TFP wants int32 seeds.
        model_metrics, start = self._model_step(batch, seeds[:, 0])
        if not behavior:
            return model_metrics
        behavior_metrics = self._behavior_step(start, seeds[:, 1])
        self.behavior.copy_targets_when_due()
        return {**model_metrics, **behavior_metrics}

    def _model_step_impl(self, batch, seed):
        self.trace_counts["model"] += 1
        return self.world_model.train(batch, seed)

    def _behavior_step_impl(self, start: RSSMState, seed):
        self.trace_counts["behavior"] += 1
        return self.behavior.train(self.world_model, start, seed)
