"""WorldModel: LAMBDA's recurrent state-space model, its heads and its SWAG posterior.

The model half of ``LambdaAgent`` (as DreamerV3's ``WorldModel``): an encoder
(a CNN for 64x64 images, an MLP for vectors, with running observation
statistics), the RSSM (``saferl_tf.models.rssm``), a decoder, reward, cost and
terminal heads, the model's optimizer, and a SWAG posterior over the weights
that imagination uses (the prior step and the three heads). It knows nothing
of actors, critics or the constraint: a behaviour learner imagines with it.

Call sequence::

    model = WorldModel(observation_space, action_size, config)
    metrics, start = model.train(batch, seed)         # one update; start [B * L] states
    weights = model.sample_posterior(samples, seed)   # per variable [S, ...]
    rollout = model.imagine(start, policy, horizon, [w[i] for w in weights], seed)
    state = model.observe_step(state, previous_action, observation, is_first, seed)
    model.record_episode(observations [T + 1, D])     # observation statistics

``batch`` holds ``observation`` [B, L, ...], ``previous_action`` [B, L, A],
``is_first`` [B, L] and the ``reward``, ``cost`` and ``terminated`` that follow
each of the first L - 1 observations, [B, L - 1]. ``train`` is pure TF: the
caller compiles it (``tf.function``, XLA where wanted).

The config (``LambdaAgent.Config``) supplies the sizes (``deter_size``,
``stoch_size``, ``rssm_hidden``, ``cnn_depth``, ``dense_units``,
``encoder_layers``, ``decoder_layers``, ``head_layers``), the loss
(``kl_balance``, ``free_nats``, ``unsafe_weight``, ``correct_unsafe_weight``,
``safety``), the optimizer
(``model_learning_rate``, ``learning_rate_step_size``, ``adam_epsilon``,
``model_clip_norm``), the observation statistics (``normalize_observations``,
``observation_clip``), SWAG (``swag_*``) and ``action_repeat``.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from saferl_tf.errors import ConfigError
from saferl_tf.models.networks import ConvDecoder, ConvEncoder, mlp, preprocess_image
from saferl_tf.models.normalization import RunningNormalizer
from saferl_tf.models.rssm import RSSM, RSSMState, balanced_kl, imagine
from saferl_tf.models.swag import SWAG, cyclic_learning_rate

tfd = tfp.distributions


class CyclicSchedule(keras.optimizers.schedules.LearningRateSchedule):
    def __init__(self, low: float, high: float, step_size: int):
        self.low, self.high, self.step_size = low, high, step_size

    def __call__(self, step):
        return cyclic_learning_rate(step, self.low, self.high, self.step_size)

    def get_config(self):
        return {"low": self.low, "high": self.high, "step_size": self.step_size}


def scalar_output(network, features, weights=None, non_trainable=None) -> tf.Tensor:
    """A one-output network on features [..., F] -> [...] float32; with ``weights``
    (its trainable variables' values), a stateless call with those instead."""
    if weights is None:
        output = network(features)
    else:
        output, _ = network.stateless_call(weights, non_trainable or [], features)
    return tf.cast(tf.squeeze(output, -1), tf.float32)


class WorldModel(tf.Module):
    def __init__(self, observation_space, action_size: int, config, name: str = "world_model"):
        super().__init__(name=name)
        self.config = config
        self.observation_shape = tuple(observation_space.shape)
        self.action_size = action_size
        self.pixels = len(self.observation_shape) == 3
        units = config.dense_units
        if self.pixels:
            if self.observation_shape != (64, 64, 3):
                raise ConfigError(f"LambdaAgent's image model needs 64x64x3 observations, "
                                  f"got {self.observation_shape}")  # fmt: skip
            self.encoder = ConvEncoder(config.cnn_depth, name="encoder")
            self.decoder = ConvDecoder(config.cnn_depth, name="decoder")
            embedding_size = 32 * config.cnn_depth
        else:
            size = int(np.prod(self.observation_shape))
            self.encoder = mlp([units] * config.encoder_layers, name="encoder")
            self.decoder = mlp([units] * config.decoder_layers, size, name="decoder")
            embedding_size = units
        self.observation_normalizer = RunningNormalizer(
            int(np.prod(self.observation_shape)), clip=config.observation_clip, decay=0.99
        )
        self._normalize = config.normalize_observations and not self.pixels
        self.rssm = RSSM(config.deter_size, config.stoch_size, config.rssm_hidden, name="rssm")
        heads = [units] * config.head_layers
        self.reward_head = mlp(heads, 1, name="reward_head")
        self.cost_head = mlp(heads, 1, name="cost_head")
        self.terminal_head = mlp(heads, 1, name="terminal_head")
        # Keras builds lazily: build every weight now, so checkpoints restore into them.
        features = tf.zeros([1, self.rssm.feature_size])
        self.rssm.build_all(embedding_size, action_size)
        self.encoder(self.preprocess(tf.zeros([1, *self.observation_shape])))
        self.decoder(features)
        for head in (self.reward_head, self.cost_head, self.terminal_head):
            head(features)
        low, high = config.model_learning_rate
        self.optimizer = keras.optimizers.Adam(
            CyclicSchedule(low, high, config.learning_rate_step_size),
            epsilon=config.adam_epsilon, clipnorm=config.model_clip_norm,
        )  # fmt: skip
        self.optimizer.build(self.trainable_model_variables())  # Slots before a restore.
        self.swag = SWAG(self.posterior_variables(), config.swag_decay, config.swag_max_columns,
                         config.swag_burn_in, config.swag_period, config.swag_scale,
                         min(config.swag_min_snapshots, config.swag_max_columns))  # fmt: skip
        self.updates = tf.Variable(0, dtype=tf.int64, trainable=False)

    @property
    def feature_size(self) -> int:
        return self.rssm.feature_size

    # --- Variables -----------------------------------------------------------

    def trainable_model_variables(self) -> list:
        """What ``train`` updates (the cost head only with ``safety``)."""
        modules = [self.encoder, self.decoder, self.rssm, self.reward_head, self.terminal_head]
        if self.config.safety:
            modules.append(self.cost_head)
        return [v for module in modules for v in module.trainable_variables]

    def posterior_modules(self) -> list:
        """What imagination runs with sampled weights, in ``posterior_variables`` order."""
        return [self.rssm.prior_step, self.reward_head, self.cost_head, self.terminal_head]

    def posterior_variables(self) -> list:
        return [v for module in self.posterior_modules() for v in module.trainable_variables]

    def sample_posterior(self, samples: int, seed) -> list:
        """``samples`` draws of the posterior variables: one [S, ...] tensor per
        variable (the current weights, repeated, until SWAG has enough snapshots)."""
        return self.swag.sample_weights(samples, seed)

    # --- Observations --------------------------------------------------------

    def preprocess(self, observation) -> tf.Tensor:
        """uint8 images to [-0.5, 0.5]; vector observations flattened to [..., D],
        float32 and normalized by the running statistics."""
        if self.pixels:
            return preprocess_image(observation)
        event_rank = len(self.observation_shape)
        leading = observation.shape[: observation.shape.rank - event_rank]
        flat = tf.cast(tf.reshape(observation, [*leading, -1]), tf.float32)
        return self.observation_normalizer.normalize(flat) if self._normalize else flat

    @property
    def normalizes_observations(self) -> bool:
        return self._normalize

    def record_episode(self, observations: np.ndarray) -> None:
        """One finished episode's observations [T + 1, D] update the statistics
        (the published code's timing: once per episode)."""
        if self._normalize:
            self.observation_normalizer.update(observations)

    def observe_step(self, state: RSSMState, previous_action, observation, is_first, seed):
        """One filtering step while acting: observation [N, ...] -> posterior state [N]."""
        embedding = tf.cast(self.encoder(self.preprocess(observation)), tf.float32)
        return self.rssm.observe_step(state, previous_action, embedding, is_first, seed)

    # --- Learning ------------------------------------------------------------

    def train(self, batch: dict, seed):
        """One model update and SWAG collection -> (metrics, start): the posterior
        states of every batch position, [B * L], without gradient."""
        config = self.config
        variables = self.trainable_model_variables()
        with tf.GradientTape() as tape:
            observation = self.preprocess(batch["observation"])
            embeddings = tf.cast(self.encoder(observation), tf.float32)
            posterior, prior = self.rssm.observe(embeddings, batch["previous_action"],
                                                 batch["is_first"], seed)  # fmt: skip
            features = posterior.features()
            reconstruction = tf.cast(self.decoder(features), tf.float32)
            event_dims = len(self.observation_shape) if self.pixels else 1
            target = observation if self.pixels else tf.reshape(
                observation, tf.shape(reconstruction))  # fmt: skip
            observation_ll = tfd.Independent(tfd.Normal(reconstruction, 1.0), event_dims).log_prob(
                target
            )
            next_features = features[:, 1:]
            reward_ll = tfd.Normal(scalar_output(self.reward_head, next_features), 1.0).log_prob(
                batch["reward"]
            )
            terminal_ll = tfd.Bernoulli(
                logits=scalar_output(self.terminal_head, next_features)
            ).log_prob(batch["terminated"])
            kl_loss, kl = balanced_kl(posterior, prior, config.kl_balance, config.free_nats)
            loss = (kl_loss - tf.reduce_mean(observation_ll) - tf.reduce_mean(reward_ll)
                    - tf.reduce_mean(terminal_ll))  # fmt: skip
            metrics = {}
            if config.safety:
                unsafe = tf.cast(batch["cost"] >= 1.0, tf.float32)
                cost_ll = tfd.Bernoulli(
                    logits=scalar_output(self.cost_head, next_features)
                ).log_prob(unsafe)
                weights = 1.0 + (config.unsafe_weight - 1.0) * unsafe
                cost_loss = -tf.reduce_mean(weights * cost_ll)
                loss += cost_loss
                metrics["model/cost_loss"] = cost_loss
        gradients = tape.gradient(loss, variables)
        self.optimizer.apply_gradients(zip(gradients, variables))
        self.updates.assign_add(1)
        self.swag.collect(self.updates)
        metrics.update({
            "model/loss": loss,
            "model/kl": kl,
            "model/observation_loss": -tf.reduce_mean(observation_ll),
            "model/reward_loss": -tf.reduce_mean(reward_ll),
            "model/terminal_loss": -tf.reduce_mean(terminal_ll),
            "model/learning_rate": cyclic_learning_rate(
                self.optimizer.iterations, *config.model_learning_rate,
                config.learning_rate_step_size,
            ),
            "model/gradient_norm": tf.linalg.global_norm(gradients),
            "swag/snapshots": tf.cast(self.swag.snapshots, tf.float32),
        })  # fmt: skip
        start = tf.nest.map_structure(
            lambda x: tf.stop_gradient(tf.reshape(x, [-1, x.shape[-1]])), posterior
        )
        return metrics, start

    # --- Imagination ---------------------------------------------------------

    def imagine(self, start: RSSMState, policy, horizon: int, weights: list, seed) -> dict:
        """``horizon`` steps from ``start`` [N] under ``policy(features, seed) ->
        action`` with one posterior sample's ``weights`` (``posterior_variables``
        order) -> features [N, H + 1, F] and the reward, cost and continue
        probability of each step, [N, H]. Imagined cost is the cost head's
        probability times ``action_repeat``: the environment sums cost over an
        agent step's repeats (with ``correct_unsafe_weight``, the probability of
        logit - log(unsafe_weight))."""
        parts, offset = [], 0
        for module in self.posterior_modules():
            size = len(module.trainable_variables)
            parts.append(weights[offset : offset + size])
            offset += size
        prior_weights, reward_weights, cost_weights, terminal_weights = parts
        states, _ = imagine(self.rssm, start, policy, horizon, self.action_size, seed,
                            weights=prior_weights)  # fmt: skip
        features = states.features()  # [H + 1, N, F]
        following = features[1:]

        def head(network, head_weights):
            return scalar_output(network, following, head_weights,
                                 network.non_trainable_variables)  # fmt: skip

        reward = head(self.reward_head, reward_weights)
        cost_logits = head(self.cost_head, cost_weights)
        if self.config.correct_unsafe_weight:  # Undo the class weighting's shift.
            cost_logits -= float(np.log(self.config.unsafe_weight))
        cost = self.config.action_repeat * tf.sigmoid(cost_logits)
        terminal = tf.sigmoid(head(self.terminal_head, terminal_weights))
        to_batch = lambda x: tf.transpose(x, [1, 0])  # noqa: E731  [H, N] -> [N, H]
        return {
            "features": tf.transpose(features, [1, 0, 2]),
            "reward": to_batch(reward),
            "cost": to_batch(cost),
            "continue": to_batch(1.0 - terminal),
        }
