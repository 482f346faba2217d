"""Recurrent state-space model (PlaNet/Dreamer), as LAMBDA uses it.

The state is a deterministic GRU state h (``deter`` units) and a diagonal
Gaussian stochastic state s (``stoch`` units, std = softplus(x) + ``min_std``):

    prior      h_t = GRU(h_{t-1}, dense([s_{t-1}, a_{t-1}]));  p(s_t | h_t)
    posterior  q(s_t | h_t, e_t) from the embedding e_t of observation o_t

Shapes: B batch, T time, A action size, E embedding size::

    rssm = RSSM(deter=200, stoch=30, hidden=200)
    posterior, prior = rssm.observe(embeddings [B, T, E], previous_actions [B, T, A],
                                    is_first [B, T], seed)       # RSSMState of [B, T, .]
    state = rssm.observe_step(state, previous_action [B, A], embedding [B, E],
                              is_first [B], seed)                # acting, one step
    state = rssm.imagine_step(state, action [B, A], seed, weights=None)
    features = state.features()                                  # [..., deter + stoch]

``imagine_step(..., weights=w)`` runs the prior with other weights for its
``prior_step`` layer (a posterior sample from SWAG, say) through Keras 3's
``stateless_call``: nothing is assigned, so it compiles with XLA.
``seed`` arguments are stateless seeds (int [2]).
"""

from __future__ import annotations

from typing import NamedTuple

import keras
import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions


class RSSMState(NamedTuple):
    deter: tf.Tensor  # [..., deter]
    stoch: tf.Tensor  # [..., stoch] a sample of the stochastic state
    mean: tf.Tensor  # [..., stoch] of its distribution
    std: tf.Tensor  # [..., stoch]

    def features(self) -> tf.Tensor:
        return tf.concat([self.deter, self.stoch], -1)

    def distribution(self) -> tfd.Distribution:
        return tfd.Independent(tfd.Normal(self.mean, self.std), 1)


def _mean_std(raw, min_std: float):
    # The state stays float32 under a mixed-precision policy (layers compute in
    # float16 and autocast their float32 inputs).
    mean, std = tf.split(tf.cast(raw, tf.float32), 2, axis=-1)
    return mean, tf.nn.softplus(std) + min_std


class PriorStep(keras.layers.Layer):
    """(h_{t-1}, s_{t-1}, a_{t-1}) -> (h_t, prior mean, prior std)."""

    def __init__(self, deter: int, stoch: int, hidden: int, min_std: float, **kwargs):
        super().__init__(**kwargs)
        self.min_std = min_std
        self.inputs_layer = keras.layers.Dense(hidden, activation="elu")
        self.cell = keras.layers.GRUCell(deter)
        self.hidden_layer = keras.layers.Dense(hidden, activation="elu")
        self.output_layer = keras.layers.Dense(2 * stoch)

    def call(self, deter, stoch, action):
        x = self.inputs_layer(tf.concat([stoch, action], -1))
        deter, _ = self.cell(x, [tf.cast(deter, x.dtype)])
        mean, std = _mean_std(self.output_layer(self.hidden_layer(deter)), self.min_std)
        deter = tf.cast(deter, tf.float32)
        return deter, mean, std


class PosteriorStep(keras.layers.Layer):
    """(h_t, e_t) -> (posterior mean, posterior std)."""

    def __init__(self, stoch: int, hidden: int, min_std: float, **kwargs):
        super().__init__(**kwargs)
        self.min_std = min_std
        self.hidden_layer = keras.layers.Dense(hidden, activation="elu")
        self.output_layer = keras.layers.Dense(2 * stoch)

    def call(self, deter, embedding):
        raw = self.output_layer(self.hidden_layer(tf.concat([deter, embedding], -1)))
        return _mean_std(raw, self.min_std)


class RSSM(keras.layers.Layer):
    def __init__(self, deter: int = 200, stoch: int = 30, hidden: int = 200,
                 min_std: float = 0.1, **kwargs):  # fmt: skip
        super().__init__(**kwargs)
        self.deter_size, self.stoch_size = deter, stoch
        self.prior_step = PriorStep(deter, stoch, hidden, min_std, name="prior_step")
        self.posterior_step = PosteriorStep(stoch, hidden, min_std, name="posterior_step")

    @property
    def feature_size(self) -> int:
        return self.deter_size + self.stoch_size

    def initial(self, batch_size) -> RSSMState:
        zeros = tf.zeros([batch_size, self.stoch_size])
        return RSSMState(tf.zeros([batch_size, self.deter_size]), zeros, zeros, tf.ones_like(zeros))

    def build_all(self, embedding_size: int, action_size: int) -> None:
        """Creates every weight (Keras builds lazily) by one step on zeros."""
        state = self.initial(1)
        self.observe_step(state, tf.zeros([1, action_size]), tf.zeros([1, embedding_size]),
                          tf.constant([True]), tf.constant([0, 0]))  # fmt: skip

    def _reset(self, state: RSSMState, previous_action, is_first):
        keep = 1.0 - tf.cast(is_first, tf.float32)[:, None]
        state = tf.nest.map_structure(lambda x: x * keep, state)
        return state._replace(std=state.std + (1.0 - keep)), previous_action * keep

    def _observe(self, state, previous_action, embedding, is_first, noise):
        state, previous_action = self._reset(state, previous_action, is_first)
        deter, prior_mean, prior_std = self.prior_step(state.deter, state.stoch, previous_action)
        prior = RSSMState(deter, prior_mean + prior_std * noise, prior_mean, prior_std)
        mean, std = self.posterior_step(deter, embedding)
        return RSSMState(deter, mean + std * noise, mean, std), prior

    def observe_step(self, state, previous_action, embedding, is_first, seed) -> RSSMState:
        noise = tf.random.stateless_normal(tf.shape(state.stoch), seed)
        return self._observe(state, previous_action, embedding, is_first, noise)[0]

    def observe(self, embeddings, previous_actions, is_first, seed, state=None):
        """Posterior and prior states [B, T, .] along observed sequences."""
        batch = tf.shape(embeddings)[0]
        state = self.initial(batch) if state is None else state
        time_major = [tf.transpose(x, [1, 0, *range(2, len(x.shape))])
                      for x in (embeddings, previous_actions, is_first)]  # fmt: skip
        length = tf.shape(embeddings)[1]
        noise = tf.random.stateless_normal(tf.stack([length, batch, self.stoch_size]), seed)

        def step(carry, inputs):
            posterior, _ = carry
            embedding, action, first, eps = inputs
            return self._observe(posterior, action, embedding, first, eps)

        posteriors, priors = tf.scan(step, (*time_major, noise), initializer=(state, state))
        batch_major = lambda x: tf.transpose(x, [1, 0, 2])  # noqa: E731
        return (tf.nest.map_structure(batch_major, posteriors),
                tf.nest.map_structure(batch_major, priors))  # fmt: skip

    def imagine_step(self, state: RSSMState, action, seed, weights=None) -> RSSMState:
        if weights is None:
            deter, mean, std = self.prior_step(state.deter, state.stoch, action)
        else:
            (deter, mean, std), _ = self.prior_step.stateless_call(
                weights, self.prior_step.non_trainable_variables, state.deter, state.stoch, action
            )
        stoch = mean + std * tf.random.stateless_normal(tf.shape(mean), seed)
        return RSSMState(deter, stoch, mean, std)


def balanced_kl(posterior: RSSMState, prior: RSSMState, balance: float = 0.8,
                free_nats: float = 3.0) -> tuple[tf.Tensor, tf.Tensor]:  # fmt: skip
    """KL balancing (DreamerV2): balance * KL(sg(q) || p) + (1 - balance) * KL(q || sg(p)),
    each mean clipped below at ``free_nats``. Returns (loss, mean KL(q || p))."""
    stop = lambda state: tf.nest.map_structure(tf.stop_gradient, state)  # noqa: E731
    kl = tfd.kl_divergence(posterior.distribution(), prior.distribution())
    kl_prior = tfd.kl_divergence(stop(posterior).distribution(), prior.distribution())
    kl_posterior = tfd.kl_divergence(posterior.distribution(), stop(prior).distribution())
    loss = balance * tf.maximum(tf.reduce_mean(kl_prior), free_nats) + (1 - balance) * tf.maximum(
        tf.reduce_mean(kl_posterior), free_nats
    )
    return loss, tf.reduce_mean(kl)


def imagine(rssm: RSSM, start: RSSMState, policy, horizon: int, action_size: int, seed,
            weights=None):  # fmt: skip
    """Rolls ``policy(features, seed) -> actions [N, A]`` through the prior for ``horizon`` steps.

    start: RSSMState of [N, .]. Returns (states: RSSMState of [H + 1, N, .] with
    the start first, actions [H, N, A]). Gradients flow through the actions and
    the dynamics; ``weights`` are other weights for ``rssm.prior_step``.
    """
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int32), 2 * horizon)
    seeds = tf.reshape(seeds, [horizon, 2, 2])

    def step(carry, step_seeds):
        state, _ = carry
        action = policy(state.features(), step_seeds[0])
        return rssm.imagine_step(state, action, step_seeds[1], weights), action

    no_action = tf.zeros([tf.shape(start.deter)[0], action_size])  # Only fixes the structure.
    states, actions = tf.scan(step, seeds, initializer=(start, no_action))
    states = tf.nest.map_structure(lambda s, x: tf.concat([s[None], x], 0), start, states)
    return states, actions
