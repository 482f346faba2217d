"""Soft actor-critic's losses and targets as pure TensorFlow functions
(Haarnoja et al. 2018, with twin critics and automatic entropy tuning).

Shapes: a batch of B transitions; every argument and result is [B] unless
said otherwise; ``alpha`` and the losses are scalars. The call sequence of one
update (``saferl_tf.agents`` compose these inside one compiled step)::

    next_action, next_log_prob = policy.sample(next_observation)
    targets = critic_targets(reward, continues, target_q1(next), target_q2(next),
                             next_log_prob, alpha, discount)          # no gradient
    critic_loss = twin_critic_loss(q1(o, a), q2(o, a), targets)
    new_action, log_prob = policy.sample(observation)                 # reparameterized
    policy_loss = actor_loss(q1(o, new_action), q2(o, new_action), log_prob, alpha)
    alpha_loss = temperature_loss(log_alpha, log_prob, target_entropy)
    soft_update(target_variables, variables, tau=0.005)

``SACLearner`` holds the networks (twin critics with targets, a tanh-squashed
Gaussian actor, feature-normalized ReLU MLPs as the VaGraM code's SAC), the
learned temperature and, for SAC-Lagrangian, a cost critic and a
``saferl_tf.rl.lagrangian.ConstraintPenalty``; its ``train`` is one update.
Checked against NumPy in ``tests/test_sac.py``.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf


def critic_targets(reward, continues, next_q1, next_q2, next_log_prob, alpha, discount: float):
    """y = r + gamma c (min(Q1', Q2') - alpha log pi(a' | s')), without gradient."""
    soft_value = tf.minimum(next_q1, next_q2) - alpha * next_log_prob
    return tf.stop_gradient(reward + discount * continues * soft_value)


def twin_critic_loss(q1, q2, targets):
    """Both critics' mean squared errors, each halved as in the SAC paper, summed."""
    return 0.5 * tf.reduce_mean(tf.square(q1 - targets)) + 0.5 * tf.reduce_mean(
        tf.square(q2 - targets)
    )


def actor_loss(q1, q2, log_prob, alpha):
    """E[alpha log pi(a | s) - min(Q1, Q2)(s, a)] with a reparameterized a."""
    return tf.reduce_mean(tf.stop_gradient(alpha) * log_prob - tf.minimum(q1, q2))


def temperature_loss(log_alpha, log_prob, target_entropy: float):
    """-E[log alpha (log pi + H_target)]: alpha rises while the entropy is
    below its target."""
    return -tf.reduce_mean(log_alpha * tf.stop_gradient(log_prob + target_entropy))


def soft_update(targets: Sequence[tf.Variable], sources: Sequence[tf.Variable], tau: float):
    """theta_target <- (1 - tau) theta_target + tau theta."""
    for target, source in zip(targets, sources):
        target.assign((1.0 - tau) * target + tau * source)


class FeatureMLP(keras.layers.Layer):
    """ReLU hidden layers, then (``normalize_features``) the last hidden features
    scaled to unit L2 norm (Bjorck et al.'s variance reduction, as the VaGraM
    code's ``NormLayer``: no centring, no learned scale), then a linear output."""

    def __init__(self, units: int, layers: int, output: int, normalize_features: bool = True,
                 **kwargs):  # fmt: skip
        super().__init__(**kwargs)
        self.normalize_features = normalize_features
        self.hidden = [keras.layers.Dense(units, activation="relu", name=f"hidden_{index}")
                       for index in range(layers)]  # fmt: skip
        for index, layer in enumerate(self.hidden):
            setattr(self, f"hidden_{index}", layer)  # Tracked by name in checkpoints.
        self.out = keras.layers.Dense(output, name="output")

    def call(self, inputs):
        features = inputs
        for layer in self.hidden:
            features = layer(features)
        if self.normalize_features:
            features = tf.math.l2_normalize(features, axis=-1, epsilon=1e-12)
        return self.out(features)


class SACLearner(tf.Module):
    """SAC's networks and one update, with an optional cost critic and a
    ``ConstraintPenalty`` (SAC-Lagrangian).

    Call sequence::

        learner = SACLearner(observation_size, action_size, hidden_units=256)
        action, log_prob = learner.sample(observation [B, O], seed [2])  # in [-1, 1]
        action = learner.mean_action(observation)                         # evaluation
        metrics = learner.train(batch, seed)   # pure TF: the caller compiles it

    ``batch`` holds observation [B, O], action [B, A], reward [B], cost [B],
    next_observation [B, O] and terminated [B]. With a ``penalty``, the actor's
    loss adds penalty(g), g = mean Q_c(s, a ~ pi) - ``discounted_cost_limit``;
    the cost critic regresses c + gamma_c (1 - done) Q_c'(s', a'). Each update
    also steps the multiplier on that g, unless ``multiplier_from_critic`` is
    off: then the caller calls ``penalty.update`` with its own measurement.
    """

    def __init__(self, observation_size: int, action_size: int, *, hidden_units: int = 1024,
                 hidden_layers: int = 2, normalize_features: bool = True,
                 discount: float = 0.99, tau: float = 0.005, target_update_every: int = 4,
                 actor_learning_rate: float = 3e-5, critic_learning_rate: float = 3e-4,
                 alpha_learning_rate: float = 3e-4, initial_alpha: float = 0.1,
                 target_entropy: float | None = None, log_std_bounds=(-5.0, 2.0),
                 penalty=None, cost_discount: float = 0.99, discounted_cost_limit: float = 0.0,
                 multiplier_from_critic: bool = True, name: str = "sac"):  # fmt: skip
        super().__init__(name=name)
        self.action_size = action_size
        self.discount, self.tau, self.target_update_every = discount, tau, target_update_every
        self.target_entropy = -float(action_size) if target_entropy is None else target_entropy
        self.log_std_bounds = log_std_bounds
        self.penalty, self.cost_discount = penalty, cost_discount
        self.discounted_cost_limit = discounted_cost_limit
        self.multiplier_from_critic = multiplier_from_critic

        def network(output, name):
            return FeatureMLP(hidden_units, hidden_layers, output, normalize_features, name=name)

        self.actor = network(2 * action_size, "actor")
        names = ["critic_1", "critic_2", "target_critic_1", "target_critic_2"]
        if penalty is not None:
            names += ["cost_critic", "target_cost_critic"]
        for critic_name in names:
            setattr(self, critic_name, network(1, critic_name))
        self.actor(tf.zeros([1, observation_size]))
        pair = tf.zeros([1, observation_size + action_size])
        for critic_name in names:
            getattr(self, critic_name)(pair)
        self._copy(1.0)
        self.log_alpha = tf.Variable(np.log(initial_alpha), dtype=tf.float32, name="log_alpha")
        self.actor_optimizer = keras.optimizers.Adam(actor_learning_rate)
        self.critic_optimizer = keras.optimizers.Adam(critic_learning_rate)
        self.alpha_optimizer = keras.optimizers.Adam(alpha_learning_rate)
        self.actor_optimizer.build(self.actor.trainable_variables)
        self.critic_optimizer.build(self._critic_variables())
        self.alpha_optimizer.build([self.log_alpha])
        self.updates = tf.Variable(0, dtype=tf.int64, trainable=False)

    def _pairs(self):
        pairs = [(self.target_critic_1, self.critic_1), (self.target_critic_2, self.critic_2)]
        if self.penalty is not None:
            pairs.append((self.target_cost_critic, self.cost_critic))
        return pairs

    def _critic_variables(self) -> list:
        critics = [self.critic_1, self.critic_2]
        if self.penalty is not None:
            critics.append(self.cost_critic)
        return [v for critic in critics for v in critic.trainable_variables]

    def _copy(self, tau: float) -> None:
        for target, source in self._pairs():
            soft_update(target.variables, source.variables, tau)

    # --- The policy ----------------------------------------------------------

    def _mean_and_log_std(self, observation):
        mean, raw = tf.split(tf.cast(self.actor(observation), tf.float32), 2, -1)
        low, high = self.log_std_bounds
        return mean, low + 0.5 * (high - low) * (tf.tanh(raw) + 1.0)

    def sample(self, observation, seed):
        """A reparameterized tanh-squashed Gaussian action [B, A] and its log-prob [B]."""
        mean, log_std = self._mean_and_log_std(observation)
        noise = tf.random.stateless_normal(tf.shape(mean), seed)
        pre_tanh = mean + tf.exp(log_std) * noise
        gaussian = -0.5 * tf.square(noise) - log_std - 0.5 * np.log(2.0 * np.pi)
        # log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u)), stable for large |u|.
        squash = 2.0 * (np.log(2.0) - pre_tanh - tf.nn.softplus(-2.0 * pre_tanh))
        return tf.tanh(pre_tanh), tf.reduce_sum(gaussian - squash, -1)

    def mean_action(self, observation):
        return tf.tanh(self._mean_and_log_std(observation)[0])

    @staticmethod
    def _q(critic, observation, action):
        return tf.squeeze(tf.cast(critic(tf.concat([observation, action], -1)), tf.float32), -1)

    def value_functions(self) -> list:
        """V_i(s') = Q_i(s', mean action of π(s')) for the two critics and their
        targets, each [N, d] -> [N]: the value functions whose input gradients
        weight VaGraM's model loss (the action held fixed: a state's gradient
        is the critic's own)."""

        def value(critic):
            def function(next_observation):
                action = tf.stop_gradient(self.mean_action(next_observation))
                return self._q(critic, next_observation, action)

            return function

        critics = (self.critic_1, self.critic_2, self.target_critic_1, self.target_critic_2)
        return [value(critic) for critic in critics]

    # --- One update ----------------------------------------------------------

    def targets(self, batch, seed):
        """The reward critics' targets [B] (and the cost critic's, or None)."""
        next_action, next_log_prob = self.sample(batch["next_observation"], seed)
        following = batch["next_observation"]
        continues = 1.0 - tf.cast(batch["terminated"], tf.float32)
        alpha = tf.exp(self.log_alpha)
        reward_targets = critic_targets(
            batch["reward"], continues, self._q(self.target_critic_1, following, next_action),
            self._q(self.target_critic_2, following, next_action), next_log_prob, alpha,
            self.discount,
        )  # fmt: skip
        cost_targets = None
        if self.penalty is not None:
            next_cost = self._q(self.target_cost_critic, following, next_action)
            cost_targets = tf.stop_gradient(
                batch["cost"] + self.cost_discount * continues * next_cost
            )
        return reward_targets, cost_targets

    def train(self, batch, seed) -> dict:
        target_seed, actor_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        reward_targets, cost_targets = self.targets(batch, target_seed)
        observation, action = batch["observation"], batch["action"]
        with tf.GradientTape() as tape:
            critic_loss = twin_critic_loss(self._q(self.critic_1, observation, action),
                                           self._q(self.critic_2, observation, action),
                                           reward_targets)  # fmt: skip
            if cost_targets is not None:
                cost_prediction = self._q(self.cost_critic, observation, action)
                critic_loss += 0.5 * tf.reduce_mean(tf.square(cost_prediction - cost_targets))
        variables = self._critic_variables()
        self.critic_optimizer.apply_gradients(zip(tape.gradient(critic_loss, variables), variables))
        metrics = {"sac/critic_loss": critic_loss}
        with tf.GradientTape(persistent=True) as tape:
            new_action, log_prob = self.sample(observation, actor_seed)
            alpha = tf.exp(self.log_alpha)
            policy_loss = actor_loss(self._q(self.critic_1, observation, new_action),
                                     self._q(self.critic_2, observation, new_action),
                                     log_prob, alpha)  # fmt: skip
            if self.penalty is not None:
                cost_value = tf.reduce_mean(self._q(self.cost_critic, observation, new_action))
                constraint = cost_value - self.discounted_cost_limit
                penalty = self.penalty(constraint)
                policy_loss += penalty
                metrics.update({"sac/cost_value": cost_value, "sac/constraint": constraint,
                                "sac/penalty_psi": penalty})  # fmt: skip
            alpha_loss = temperature_loss(self.log_alpha, log_prob, self.target_entropy)
        actor_variables = self.actor.trainable_variables
        self.actor_optimizer.apply_gradients(
            zip(tape.gradient(policy_loss, actor_variables), actor_variables)
        )
        self.alpha_optimizer.apply_gradients(
            zip([tape.gradient(alpha_loss, self.log_alpha)], [self.log_alpha])
        )
        del tape
        if self.penalty is not None and self.multiplier_from_critic:
            self.penalty.update(constraint)
            metrics.update({f"lagrangian/{k}": tf.identity(v)
                            for k, v in self.penalty.metrics().items()})  # fmt: skip
        self.updates.assign_add(1)
        tf.cond(self.updates % self.target_update_every == 0,
                lambda: self._copy_op(), lambda: tf.constant(False))  # fmt: skip
        metrics.update({"sac/actor_loss": policy_loss, "sac/alpha": tf.exp(self.log_alpha),
                        "sac/entropy": -tf.reduce_mean(log_prob),
                        "sac/q": tf.reduce_mean(reward_targets)})  # fmt: skip
        return metrics

    def _copy_op(self):
        self._copy(self.tau)
        return tf.constant(True)
