"""LambdaAgent: LAMBDA (As, Usmanova, Curi, Krause, ICLR 2022).

A recurrent state-space world model (``saferl_tf.models.rssm``) learned from
replayed sequences, with a SWAG posterior over the weights that imagination
uses (the prior dynamics and the reward, cost and terminal heads). Each
actor-critic update imagines ``horizon`` steps from every posterior state of
the batch under each of ``posterior_samples`` weight samples; the actor and
the critic learn from the sample with the highest value (optimism), the safety
critic from the sample with the highest cost value (pessimism), and the
augmented Lagrangian of g = mean(V_c) - d enters the actor's loss.

Call sequence (the ``Agent`` contract)::

    agent = LambdaAgent(observation_space, action_space, LambdaAgent.Config())
    action = agent.act(observation [N, ...], explore, is_first [N])
    agent.observe(transition)
    metrics = agent.update()   # model and actor-critic updates on the schedule

``update`` checks the schedule (``warmup_steps`` random environment steps,
then ``pretrain_updates`` model updates, then ``train_steps`` updates every
``train_every`` environment steps) and calls two compiled steps, traced once:
``_model_step`` (world model and SWAG) and ``_behavior_step`` (imagination,
actor, critics, Lagrangian). Both are XLA-compiled with ``jit``, except the
pixel model step on a machine without a GPU (see ``xla_cpu_convolutions``).
Override ``optimistic_index`` and ``pessimistic_index`` to change how
posterior samples are chosen.

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
import tensorflow_probability as tfp
from gymnasium import spaces

from saferl_tf.agents.base import Agent, preset_names, register_agent
from saferl_tf.config import AgentConfig, build_config
from saferl_tf.errors import ConfigError
from saferl_tf.models.networks import (
    ConvDecoder,
    ConvEncoder,
    mlp,
    preprocess_image,
    seeded_initializers,
)
from saferl_tf.models.normalization import RunningNormalizer
from saferl_tf.models.rssm import RSSM, RSSMState, balanced_kl, imagine
from saferl_tf.models.swag import SWAG, cyclic_learning_rate
from saferl_tf.rl.lagrangian import ConstraintPenalty, make_penalty
from saferl_tf.rl.returns import lambda_returns

tfd = tfp.distributions
tfb = tfp.bijectors


class CyclicSchedule(keras.optimizers.schedules.LearningRateSchedule):
    def __init__(self, low: float, high: float, step_size: int):
        self.low, self.high, self.step_size = low, high, step_size

    def __call__(self, step):
        return cyclic_learning_rate(step, self.low, self.high, self.step_size)

    def get_config(self):
        return {"low": self.low, "high": self.high, "step_size": self.step_size}


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
        # initial_multiplier.
        penalty: str = "augmented_lagrangian"
        initial_multiplier: float = 1e-6
        initial_penalty: float = 5e-9
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

    def __init__(self, observation_space, action_space, config=None, **kwargs):
        super().__init__(observation_space, action_space, config, **kwargs)
        config = self.config
        if not isinstance(action_space, spaces.Box):
            raise ConfigError(f"LambdaAgent needs a Box action space, got {action_space}")
        self._check_config(config)
        self.pixels = len(observation_space.shape) == 3
        self.action_size = int(np.prod(action_space.shape))
        size = int(np.prod(observation_space.shape))
        self.observation_normalizer = RunningNormalizer(
            size, clip=config.observation_clip, decay=0.99
        )
        self._normalize = config.normalize_observations and not self.pixels
        self._episode_observations: list[list[np.ndarray]] = [[] for _ in range(self.num_envs)]
        # Layers take Keras's global dtype policy when they are made: set it for
        # this agent's networks only. bfloat16 keeps float32's range, so no loss
        # scaling is needed; variables and the RSSM state stay float32.
        previous_policy = keras.mixed_precision.dtype_policy()
        if config.mixed_precision:
            keras.mixed_precision.set_dtype_policy("mixed_bfloat16")
        try:
            with seeded_initializers(self.seed):
                self._build_networks()
        finally:
            keras.mixed_precision.set_dtype_policy(previous_policy)
        self._build_optimizers()
        self.swag = SWAG(self._posterior_variables(), config.swag_decay, config.swag_max_columns,
                         config.swag_burn_in, config.swag_period, config.swag_scale,
                         min(config.swag_min_snapshots, config.swag_max_columns))  # fmt: skip
        self.lagrangian = self.make_penalty(config)
        self.random = tf.random.Generator.from_seed(self.seed)
        self.model_updates = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.behavior_updates = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.last_train_step = tf.Variable(-1, dtype=tf.int64, trainable=False)
        # Updates still due in the current round; a stop between updates keeps
        # the count in the checkpoint, so a resumed run finishes the round.
        self.remaining_updates = tf.Variable(0, dtype=tf.int64, trainable=False)
        # The budget per environment step, summed over an agent step's repeats, as
        # a discounted sum: the value of spending the budget evenly forever.
        per_agent_step = config.cost_limit / config.episode_length * config.action_repeat
        self.discounted_cost_limit = per_agent_step / (1.0 - config.safety_discount)
        jit = config.jit
        has_gpu = bool(tf.config.list_physical_devices("GPU"))
        self.model_jit = jit and (not self.pixels or has_gpu or config.xla_cpu_convolutions)
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
        if config.penalty == "pid":
            return make_penalty("pid", kp=config.pid_kp, ki=config.pid_ki, kd=config.pid_kd,
                                initial_multiplier=config.initial_multiplier)  # fmt: skip
        return make_penalty(config.penalty, initial_multiplier=config.initial_multiplier,
                            initial_penalty=config.initial_penalty,
                            penalty_growth=config.penalty_growth)  # fmt: skip

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

    def _build_networks(self) -> None:
        config = self.config
        units = config.dense_units
        if self.pixels:
            if tuple(self.observation_space.shape) != (64, 64, 3):
                raise ConfigError(
                    f"LambdaAgent's image model needs 64x64x3 observations, "
                    f"got {self.observation_space.shape}"
                )
            self.encoder = ConvEncoder(config.cnn_depth, name="encoder")
            self.decoder = ConvDecoder(config.cnn_depth, name="decoder")
            embedding_size = 32 * config.cnn_depth
        else:
            size = int(np.prod(self.observation_space.shape))
            self.encoder = mlp([units] * config.encoder_layers, name="encoder")
            self.decoder = mlp([units] * config.decoder_layers, size, name="decoder")
            embedding_size = units
        self.rssm = RSSM(config.deter_size, config.stoch_size, config.rssm_hidden, name="rssm")
        heads = [units] * config.head_layers
        self.reward_head = mlp(heads, 1, name="reward_head")
        self.cost_head = mlp(heads, 1, name="cost_head")
        self.terminal_head = mlp(heads, 1, name="terminal_head")
        self.actor = mlp([units] * config.actor_layers, 2 * self.action_size, name="actor")
        self.critic = mlp([units] * config.critic_layers, 1, name="critic")
        self.target_critic = mlp([units] * config.critic_layers, 1, name="target_critic")
        self.safety_critic = mlp([units] * config.critic_layers, 1, name="safety_critic")
        self.target_safety_critic = mlp([units] * config.critic_layers, 1,
                                        name="target_safety_critic")  # fmt: skip
        # Keras builds lazily: build every weight now, so checkpoints restore into them.
        features = tf.zeros([1, self.rssm.feature_size])
        self.rssm.build_all(embedding_size, self.action_size)
        self.encoder(self._preprocess(tf.zeros([1, *self.observation_space.shape])))
        self.decoder(features)
        for network in (self.reward_head, self.cost_head, self.terminal_head, self.actor,
                        self.critic, self.target_critic, self.safety_critic,
                        self.target_safety_critic):  # fmt: skip
            network(features)
        self._copy_target()

    def _build_optimizers(self) -> None:
        config = self.config
        low, high = config.model_learning_rate
        self.model_optimizer = keras.optimizers.Adam(
            CyclicSchedule(low, high, config.learning_rate_step_size),
            epsilon=config.adam_epsilon, clipnorm=config.model_clip_norm,
        )  # fmt: skip
        # Clipping as the published code (TF 2.4's clipnorm: each gradient tensor
        # by its own norm), and the actor's gradient also by its global norm.
        self.actor_optimizer = keras.optimizers.Adam(
            config.actor_learning_rate, epsilon=config.adam_epsilon,
            global_clipnorm=config.actor_clip_norm,
        )  # fmt: skip
        self.critic_optimizer = keras.optimizers.Adam(
            config.critic_learning_rate, epsilon=config.adam_epsilon,
            clipnorm=config.critic_clip_norm,
        )  # fmt: skip
        self.safety_critic_optimizer = keras.optimizers.Adam(
            config.safety_critic_learning_rate, epsilon=config.adam_epsilon,
            clipnorm=config.safety_critic_clip_norm,
        )  # fmt: skip
        # Slots exist before a checkpoint is restored into them.
        self.model_optimizer.build(self._model_variables())
        self.actor_optimizer.build(self.actor.trainable_variables)
        self.critic_optimizer.build(self.critic.trainable_variables)
        self.safety_critic_optimizer.build(self.safety_critic.trainable_variables)

    def _model_variables(self) -> list:
        modules = [self.encoder, self.decoder, self.rssm, self.reward_head, self.terminal_head]
        if self.config.safety:
            modules.append(self.cost_head)
        return [v for module in modules for v in module.trainable_variables]

    def _posterior_modules(self) -> list:
        """What imagination runs with sampled weights, in ``_posterior_variables`` order."""
        return [self.rssm.prior_step, self.reward_head, self.cost_head, self.terminal_head]

    def _posterior_variables(self) -> list:
        return [v for module in self._posterior_modules() for v in module.trainable_variables]

    def _preprocess(self, observation):
        """uint8 images to [-0.5, 0.5]; vector observations flattened to [..., D], float32."""
        if self.pixels:
            return preprocess_image(observation)
        event_rank = len(self.observation_space.shape)
        leading = observation.shape[: observation.shape.rank - event_rank]
        flat = tf.cast(tf.reshape(observation, [*leading, -1]), tf.float32)
        return self.observation_normalizer.normalize(flat) if self._normalize else flat

    def _observe(self, transition) -> None:
        """Feeds each finished training episode [o_0, ..., o_T] to the observation
        statistics (the published code's timing: once per episode)."""
        if not self._normalize:
            return
        ended = np.asarray(transition.terminated) | np.asarray(transition.truncated)
        for index in range(len(ended)):
            episode = self._episode_observations[index]
            if not episode:
                episode.append(np.asarray(transition.observation[index]).reshape(-1))
            episode.append(np.asarray(transition.next_observation[index]).reshape(-1))
            if ended[index]:
                self.observation_normalizer.update(np.stack(episode))
                episode.clear()

    def _copy_target(self) -> None:
        pairs = ((self.target_critic, self.critic), (self.target_safety_critic, self.safety_critic))
        for target_network, network in pairs:
            for target, source in zip(target_network.variables, network.variables):
                target.assign(source)

    # --- Distributions -------------------------------------------------------

    def action_distribution(self, features, weights=None):
        """Tanh-squashed Normal: mean 5 tanh(mu / 5), std softplus(x + log(e^5 - 1)) + 1e-4."""
        raw = self.actor(features) if weights is None else weights
        raw = tf.cast(raw, tf.float32)
        mean, std = tf.split(raw, 2, -1)
        mean = 5.0 * tf.tanh(mean / 5.0)
        std = tf.nn.softplus(std + np.log(np.expm1(5.0))) + 1e-4
        normal = tfd.Normal(mean, std)
        return tfd.Independent(tfd.TransformedDistribution(normal, tfb.Tanh()), 1), mean

    @staticmethod
    def _scalar(network, features, weights=None, non_trainable=None):
        if weights is None:
            output = network(features)
        else:
            output, _ = network.stateless_call(weights, non_trainable or [], features)
        return tf.cast(tf.squeeze(output, -1), tf.float32)

    # --- Acting --------------------------------------------------------------

    def _policy_step_impl(self, state, previous_action, observation, is_first, explore, seed):
        self.trace_counts["policy"] += 1
        seeds = tf.random.experimental.stateless_split(seed, 2)
        embedding = tf.cast(self.encoder(self._preprocess(observation)), tf.float32)
        state = self.rssm.observe_step(state, previous_action, embedding, is_first, seeds[0])
        distribution, mean = self.action_distribution(state.features())
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
            carried = (self.rssm.initial(batch), tf.zeros([batch, self.action_size]))
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
        """One model update and (with ``behavior``) one behaviour update on ``batch``
        (see ``_batch_tensors``). Pre-training rounds train the model alone, as the
        published code."""
        seeds = tf.cast(self.random.make_seeds(2), tf.int32)  # TFP wants int32 seeds.
        model_metrics, posterior = self._model_step(batch, seeds[:, 0])
        if not behavior:
            return model_metrics
        behavior_metrics = self._behavior_step(posterior, seeds[:, 1])
        if int(self.behavior_updates.numpy()) % self.config.target_update_every == 0:
            self._copy_target()
        return {**model_metrics, **behavior_metrics}

    def _model_step_impl(self, batch, seed):
        self.trace_counts["model"] += 1
        config = self.config
        variables = self._model_variables()
        with tf.GradientTape() as tape:
            observation = self._preprocess(batch["observation"])
            embeddings = tf.cast(self.encoder(observation), tf.float32)
            posterior, prior = self.rssm.observe(embeddings, batch["previous_action"],
                                                 batch["is_first"], seed)  # fmt: skip
            features = posterior.features()
            reconstruction = tf.cast(self.decoder(features), tf.float32)
            event_dims = len(self.observation_space.shape) if self.pixels else 1
            target = observation if self.pixels else tf.reshape(
                observation, tf.shape(reconstruction))  # fmt: skip
            observation_ll = tfd.Independent(tfd.Normal(reconstruction, 1.0), event_dims).log_prob(
                target
            )
            next_features = features[:, 1:]
            reward_ll = tfd.Normal(self._scalar(self.reward_head, next_features), 1.0).log_prob(
                batch["reward"]
            )
            terminal_ll = tfd.Bernoulli(
                logits=self._scalar(self.terminal_head, next_features)
            ).log_prob(batch["terminated"])
            kl_loss, kl = balanced_kl(posterior, prior, config.kl_balance, config.free_nats)
            loss = (kl_loss - tf.reduce_mean(observation_ll) - tf.reduce_mean(reward_ll)
                    - tf.reduce_mean(terminal_ll))  # fmt: skip
            metrics = {}
            if config.safety:
                unsafe = tf.cast(batch["cost"] >= 1.0, tf.float32)
                cost_ll = tfd.Bernoulli(
                    logits=self._scalar(self.cost_head, next_features)
                ).log_prob(unsafe)
                weights = 1.0 + (config.unsafe_weight - 1.0) * unsafe
                cost_loss = -tf.reduce_mean(weights * cost_ll)
                loss += cost_loss
                metrics["model/cost_loss"] = cost_loss
        gradients = tape.gradient(loss, variables)
        self.model_optimizer.apply_gradients(zip(gradients, variables))
        self.model_updates.assign_add(1)
        self.swag.collect(self.model_updates)
        metrics.update({
            "model/loss": loss,
            "model/kl": kl,
            "model/observation_loss": -tf.reduce_mean(observation_ll),
            "model/reward_loss": -tf.reduce_mean(reward_ll),
            "model/terminal_loss": -tf.reduce_mean(terminal_ll),
            "model/learning_rate": cyclic_learning_rate(
                self.model_optimizer.iterations, *config.model_learning_rate,
                config.learning_rate_step_size,
            ),
            "model/gradient_norm": tf.linalg.global_norm(gradients),
            "swag/snapshots": tf.cast(self.swag.snapshots, tf.float32),
        })  # fmt: skip
        start = tf.nest.map_structure(
            lambda x: tf.stop_gradient(tf.reshape(x, [-1, x.shape[-1]])), posterior
        )
        return metrics, start

    # --- Choosing posterior samples ------------------------------------------

    def optimistic_index(self, values):
        """values [S, N]: each start state's value under each sample -> chosen sample [N]."""
        return tf.argmax(values, axis=0, output_type=tf.int32)

    def pessimistic_index(self, cost_values):
        """cost_values [S, N] -> the sample with the highest cost value [N]."""
        return tf.argmax(cost_values, axis=0, output_type=tf.int32)

    # --- Behaviour ------------------------------------------------------------

    def _imagine_sample(self, start, weights, seed):
        """One posterior sample's imagined trajectories and their per-step quantities
        ([N, H] rewards, costs, continues; [N, H + 1] features)."""
        modules = self._posterior_modules()
        sizes = [len(module.trainable_variables) for module in modules]
        parts, offset = [], 0
        for size in sizes:
            parts.append(weights[offset : offset + size])
            offset += size
        prior_weights, reward_weights, cost_weights, terminal_weights = parts
        seeds = tf.random.experimental.stateless_split(seed, 2)

        def policy(features, policy_seed):
            # As the published code: the actor's gradient reaches it through the
            # dynamics and heads, not through its own input features.
            features = tf.stop_gradient(features)
            return self.action_distribution(features)[0].sample(seed=policy_seed)

        states, _ = imagine(self.rssm, start, policy, self.config.horizon, self.action_size,
                            seeds[0], weights=prior_weights)  # fmt: skip
        features = states.features()  # [H + 1, N, F]
        following = features[1:]
        reward = self._scalar(self.reward_head, following, reward_weights,
                              self.reward_head.non_trainable_variables)  # fmt: skip
        # The environment sums cost over an agent step's repeats: so does imagination.
        cost_logits = self._scalar(self.cost_head, following, cost_weights,
                                   self.cost_head.non_trainable_variables)  # fmt: skip
        cost = self.config.action_repeat * tf.sigmoid(cost_logits)
        terminal = tf.sigmoid(self._scalar(self.terminal_head, following, terminal_weights,
                                           self.terminal_head.non_trainable_variables))  # fmt: skip
        to_batch = lambda x: tf.transpose(x, [1, 0])  # noqa: E731  [H, N] -> [N, H]
        return {
            "features": tf.transpose(features, [1, 0, 2]),
            "reward": to_batch(reward),
            "cost": to_batch(cost),
            "continue": to_batch(1.0 - terminal),
        }

    def _behavior_step_impl(self, start: RSSMState, seed):
        self.trace_counts["behavior"] += 1
        config = self.config
        samples = config.posterior_samples
        seeds = tf.random.experimental.stateless_split(seed, samples + 1)
        sampled = self.swag.sample_weights(samples, seeds[0])
        actor_variables = self.actor.trainable_variables
        with tf.GradientTape(persistent=True) as tape:
            rollouts = [self._imagine_sample(start, [w[i] for w in sampled], seeds[i + 1])
                        for i in range(samples)]  # fmt: skip
            stacked = {k: tf.stack([r[k] for r in rollouts]) for k in rollouts[0]}  # [S, N, ...]
            # The actor's returns bootstrap with the online critics, as the published
            # code; the target critics serve only the critics' own regression targets.
            values = self._scalar(self.critic, stacked["features"])  # [S, N, H + 1]
            returns = lambda_returns(stacked["reward"], values[..., 1:], stacked["continue"],
                                     config.discount, config.lambda_)  # fmt: skip
            # Optimism: per start state, the sample whose imagined states have the
            # highest mean value (over the horizon, as the published code).
            mean_values = tf.stop_gradient(tf.reduce_mean(values[..., 1:], -1))  # [S, N]
            chosen = self.optimistic_index(mean_values)
            pick = _picker(chosen)
            optimistic_returns = pick(returns)  # [N, H]
            horizon = config.horizon
            discounts = config.discount ** tf.range(horizon, dtype=tf.float32)  # gamma^t
            actor_loss = -tf.reduce_mean(discounts * optimistic_returns)
            metrics = {}
            if config.safety:
                cost_values = self._scalar(self.safety_critic, stacked["features"])
                cost_returns = lambda_returns(stacked["cost"], cost_values[..., 1:],
                                              stacked["continue"], config.safety_discount,
                                              config.safety_lambda)  # fmt: skip
                if config.clip_cost_returns:  # Zero gradient only outside [0, bound].
                    bound = config.action_repeat / (1.0 - config.safety_discount)
                    cost_returns = tf.clip_by_value(cost_returns, 0.0, bound)
                pessimistic = self.pessimistic_index(
                    tf.stop_gradient(tf.reduce_mean(cost_values[..., 1:], -1))
                )
                pick_cost = _picker(pessimistic)
                pessimistic_returns = pick_cost(cost_returns)  # [N, H]
                # Every start state and imagined position estimates the cost value.
                constraint = tf.reduce_mean(pessimistic_returns) - self.discounted_cost_limit
                penalty = self.lagrangian(constraint)
                actor_loss += penalty
                safety_critic_loss = self._critic_loss(
                    self.safety_critic, self.target_safety_critic, pick_cost(stacked["features"]),
                    pick_cost(stacked["cost"]), pick_cost(stacked["continue"]),
                    config.safety_discount, config.safety_lambda,
                )  # fmt: skip
                metrics.update({
                    "behavior/safety_critic_loss": safety_critic_loss,
                    "behavior/constraint": constraint,
                    "behavior/penalty_psi": penalty,
                    "behavior/cost_value": tf.reduce_mean(pessimistic_returns),
                    "behavior/cost_value_spread": tf.reduce_mean(
                        tf.math.reduce_std(cost_returns, axis=0)),
                })  # fmt: skip
            critic_loss = self._critic_loss(
                self.critic, self.target_critic, pick(stacked["features"]),
                pick(stacked["reward"]), pick(stacked["continue"]), config.discount,
                config.lambda_,
            )  # fmt: skip
        self._apply(tape, actor_loss, actor_variables, self.actor_optimizer)
        self._apply(tape, critic_loss, self.critic.trainable_variables, self.critic_optimizer)
        if config.safety:
            self._apply(tape, safety_critic_loss, self.safety_critic.trainable_variables,
                        self.safety_critic_optimizer)  # fmt: skip
            self.lagrangian.update(constraint)
        del tape
        self.behavior_updates.assign_add(1)
        metrics.update({
            "behavior/actor_loss": actor_loss,
            "behavior/critic_loss": critic_loss,
            "behavior/value": tf.reduce_mean(optimistic_returns),
            # What the optimism rule chose by: the chosen samples' mean value.
            "behavior/chosen_mean_value": tf.reduce_mean(_picker(chosen)(mean_values)),
            "behavior/value_spread": tf.reduce_mean(tf.math.reduce_std(returns, axis=0)),
            "behavior/imagined_reward": tf.reduce_mean(stacked["reward"]),
            "behavior/imagined_cost": tf.reduce_mean(stacked["cost"]),
            **{f"lagrangian/{k}": tf.identity(v) for k, v in self.lagrangian.metrics().items()},
        })  # fmt: skip
        return metrics

    def _critic_loss(self, critic, target, features, rewards, continues, discount, lambda_):
        """A critic's regression on one sample's trajectories: features [N, H + 1],
        rewards and continues [N, H]; lambda-return targets bootstrapped by the
        target network, unweighted over positions (as the published code)."""
        features = tf.stop_gradient(features)
        targets = lambda_returns(rewards, self._scalar(target, features)[:, 1:], continues,
                                 discount, lambda_)  # fmt: skip
        prediction = self._scalar(critic, features[:, :-1])
        return -tf.reduce_mean(tfd.Normal(prediction, 1.0).log_prob(tf.stop_gradient(targets)))

    @staticmethod
    def _apply(tape, loss, variables, optimizer) -> None:
        gradients = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(gradients, variables))


def _picker(chosen):
    """[N] sample indices -> a function taking [S, N, ...] to the chosen [N, ...]."""

    def pick(x):
        by_state = tf.transpose(x, [1, 0, *range(2, len(x.shape))])
        return tf.gather(by_state, chosen[:, None], axis=1, batch_dims=1)[:, 0]

    return pick
