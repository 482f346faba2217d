"""SafeActorCritic: LAMBDA's behaviour learner, trained on imagined trajectories.

The behaviour half of ``LambdaAgent`` (as DreamerV3's ``ImagBehavior``): a
tanh-squashed Gaussian actor, a reward critic and a safety (cost) critic, each
critic with a target copy, their optimizers, and a ``ConstraintPenalty``
(``saferl_tf.rl.lagrangian``). It owns no model: each update imagines with a
``saferl_tf.models.world_model.WorldModel``.

Call sequence::

    behavior = SafeActorCritic(feature_size, action_size, config, penalty)
    metrics = behavior.train(world_model, start, seed)   # one update (pure TF)
    behavior.copy_targets_when_due()                      # eager, after each update
    action = behavior.action_distribution(features)[0].sample()

One update (``train``): ``posterior_samples`` weight samples of the world model
each imagine ``horizon`` steps from every start state [N]; the actor and the
reward critic learn from the sample with the highest mean value per start state
(``optimistic_index``), the safety critic and the constraint from the sample
with the highest mean cost value (``pessimistic_index``). The actor's loss is
-mean(gamma^t V^lambda_t) + penalty(g), g = mean(V_c^lambda) - d over every
start state and imagined position, d = ``discounted_cost_limit``; its returns
bootstrap with the online critics, the critics' regression targets with the
target copies (copied every ``target_update_every`` updates).

Subclass and override ``optimistic_index``, ``pessimistic_index``,
``actor_loss`` or ``critic_loss`` to change one piece; ``LambdaAgent`` takes the
class from its ``behavior_class`` attribute and the penalty from ``make_penalty``.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from saferl_tf.models.networks import mlp
from saferl_tf.models.world_model import scalar_output
from saferl_tf.rl.lagrangian import ConstraintPenalty, discounted_cost_limit
from saferl_tf.rl.returns import lambda_returns

tfd = tfp.distributions
tfb = tfp.bijectors


def pick_samples(chosen):
    """[N] sample indices -> a function taking [S, N, ...] to the chosen [N, ...]."""

    def pick(x):
        by_state = tf.transpose(x, [1, 0, *range(2, len(x.shape))])
        return tf.gather(by_state, chosen[:, None], axis=1, batch_dims=1)[:, 0]

    return pick


class SafeActorCritic(tf.Module):
    def __init__(self, feature_size: int, action_size: int, config, penalty: ConstraintPenalty,
                 name: str = "behavior"):  # fmt: skip
        super().__init__(name=name)
        self.config = config
        self.action_size = action_size
        units = config.dense_units
        self.actor = mlp([units] * config.actor_layers, 2 * action_size, name="actor")
        critic = lambda name: mlp([units] * config.critic_layers, 1, name=name)  # noqa: E731
        self.critic = critic("critic")
        self.target_critic = critic("target_critic")
        self.safety_critic = critic("safety_critic")
        self.target_safety_critic = critic("target_safety_critic")
        features = tf.zeros([1, feature_size])
        for network in (self.actor, self.critic, self.target_critic, self.safety_critic,
                        self.target_safety_critic):  # fmt: skip
            network(features)  # Built now, so checkpoints restore into them.
        self.copy_targets()
        # Clipping as the published code (TF 2.4's clipnorm: each gradient tensor
        # by its own norm), and the actor's gradient also by its global norm.
        epsilon = config.adam_epsilon
        self.actor_optimizer = keras.optimizers.Adam(
            config.actor_learning_rate, epsilon=epsilon, global_clipnorm=config.actor_clip_norm
        )
        self.critic_optimizer = keras.optimizers.Adam(
            config.critic_learning_rate, epsilon=epsilon, clipnorm=config.critic_clip_norm
        )
        self.safety_critic_optimizer = keras.optimizers.Adam(
            config.safety_critic_learning_rate, epsilon=epsilon,
            clipnorm=config.safety_critic_clip_norm,
        )  # fmt: skip
        self.actor_optimizer.build(self.actor.trainable_variables)
        self.critic_optimizer.build(self.critic.trainable_variables)
        self.safety_critic_optimizer.build(self.safety_critic.trainable_variables)
        self.penalty = penalty
        self.discounted_cost_limit = discounted_cost_limit(
            config.cost_limit, config.episode_length, config.action_repeat, config.safety_discount
        )
        self.updates = tf.Variable(0, dtype=tf.int64, trainable=False)

    # --- The policy ----------------------------------------------------------

    def action_distribution(self, features):
        """features [..., F] -> (tanh-squashed Normal over [..., A], pre-tanh mean):
        mean 5 tanh(mu / 5), std softplus(x + log(e^5 - 1)) + 1e-4."""
        raw = tf.cast(self.actor(features), tf.float32)
        mean, std = tf.split(raw, 2, -1)
        mean = 5.0 * tf.tanh(mean / 5.0)
        std = tf.nn.softplus(std + np.log(np.expm1(5.0))) + 1e-4
        normal = tfd.Normal(mean, std)
        return tfd.Independent(tfd.TransformedDistribution(normal, tfb.Tanh()), 1), mean

    def imagination_policy(self, features, seed):
        # As the published code: the actor's gradient reaches it through the
        # dynamics and heads, not through its own input features.
        return self.action_distribution(tf.stop_gradient(features))[0].sample(seed=seed)

    # --- Choosing posterior samples ------------------------------------------

    def optimistic_index(self, values):
        """values [S, N]: each start state's mean value under each sample -> [N]."""
        return tf.argmax(values, axis=0, output_type=tf.int32)

    def pessimistic_index(self, cost_values):
        """cost_values [S, N] -> the sample with the highest mean cost value [N]."""
        return tf.argmax(cost_values, axis=0, output_type=tf.int32)

    # --- One update ----------------------------------------------------------

    def imagine(self, world_model, start, weights, seed) -> dict:
        """One posterior sample's imagined trajectories (``WorldModel.imagine``)."""
        return world_model.imagine(start, self.imagination_policy, self.config.horizon,
                                   weights, seed)  # fmt: skip

    def train(self, world_model, start, seed) -> dict:
        """One actor, critic, safety-critic and penalty update from start states [N]
        (``WorldModel.train``'s) -> metrics. Pure TF: the caller compiles it."""
        config = self.config
        samples = config.posterior_samples
        seeds = tf.random.experimental.stateless_split(seed, samples + 1)
        sampled = world_model.sample_posterior(samples, seeds[0])
        with tf.GradientTape(persistent=True) as tape:
            rollouts = [self.imagine(world_model, start, [w[i] for w in sampled], seeds[i + 1])
                        for i in range(samples)]  # fmt: skip
            stacked = {k: tf.stack([r[k] for r in rollouts]) for k in rollouts[0]}  # [S, N, ...]
            # The actor's returns bootstrap with the online critics, as the published
            # code; the target critics serve only the critics' own regression targets.
            values = scalar_output(self.critic, stacked["features"])  # [S, N, H + 1]
            returns = lambda_returns(stacked["reward"], values[..., 1:], stacked["continue"],
                                     config.discount, config.lambda_)  # fmt: skip
            # Optimism: per start state, the sample whose imagined states have the
            # highest mean value (over the horizon, as the published code).
            mean_values = tf.stop_gradient(tf.reduce_mean(values[..., 1:], -1))  # [S, N]
            pick = pick_samples(self.optimistic_index(mean_values))
            optimistic_returns = pick(returns)  # [N, H]
            actor_loss = self.actor_loss(optimistic_returns)
            metrics = {}
            if config.safety:
                cost_values = scalar_output(self.safety_critic, stacked["features"])
                cost_returns = lambda_returns(stacked["cost"], cost_values[..., 1:],
                                              stacked["continue"], config.safety_discount,
                                              config.safety_lambda)  # fmt: skip
                if config.clip_cost_returns:  # Zero gradient only outside [0, bound].
                    bound = config.action_repeat / (1.0 - config.safety_discount)
                    cost_returns = tf.clip_by_value(cost_returns, 0.0, bound)
                mean_cost_values = tf.stop_gradient(tf.reduce_mean(cost_values[..., 1:], -1))
                pick_cost = pick_samples(self.pessimistic_index(mean_cost_values))
                pessimistic_returns = pick_cost(cost_returns)  # [N, H]
                # Every start state and imagined position estimates the cost value.
                constraint = tf.reduce_mean(pessimistic_returns) - self.discounted_cost_limit
                penalty = self.penalty(constraint)
                actor_loss += penalty
                safety_critic_loss = self.critic_loss(
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
            critic_loss = self.critic_loss(
                self.critic, self.target_critic, pick(stacked["features"]),
                pick(stacked["reward"]), pick(stacked["continue"]), config.discount,
                config.lambda_,
            )  # fmt: skip
        _apply(tape, actor_loss, self.actor.trainable_variables, self.actor_optimizer)
        _apply(tape, critic_loss, self.critic.trainable_variables, self.critic_optimizer)
        if config.safety:
            _apply(tape, safety_critic_loss, self.safety_critic.trainable_variables,
                   self.safety_critic_optimizer)  # fmt: skip
            self.penalty.update(constraint)
        del tape
        self.updates.assign_add(1)
        metrics.update({
            "behavior/actor_loss": actor_loss,
            "behavior/critic_loss": critic_loss,
            "behavior/value": tf.reduce_mean(optimistic_returns),
            # What the optimism rule chose by: the chosen samples' mean value.
            "behavior/chosen_mean_value": tf.reduce_mean(pick(mean_values)),
            "behavior/value_spread": tf.reduce_mean(tf.math.reduce_std(returns, axis=0)),
            "behavior/imagined_reward": tf.reduce_mean(stacked["reward"]),
            "behavior/imagined_cost": tf.reduce_mean(stacked["cost"]),
            **{f"lagrangian/{k}": tf.identity(v) for k, v in self.penalty.metrics().items()},
        })  # fmt: skip
        return metrics

    def actor_loss(self, returns):
        """The reward part of the actor's loss from the chosen sample's lambda-returns
        [N, H]: -mean(gamma^t V^lambda_t), positions weighted by gamma^t."""
        discounts = self.config.discount ** tf.range(returns.shape[-1], dtype=tf.float32)
        return -tf.reduce_mean(discounts * returns)

    def critic_loss(self, critic, target, features, rewards, continues, discount, lambda_):
        """A critic's regression on one sample's trajectories: features [N, H + 1],
        rewards and continues [N, H]; lambda-return targets bootstrapped by the
        target network, unweighted over positions (as the published code)."""
        features = tf.stop_gradient(features)
        targets = lambda_returns(rewards, scalar_output(target, features)[:, 1:], continues,
                                 discount, lambda_)  # fmt: skip
        prediction = scalar_output(critic, features[:, :-1])
        return -tf.reduce_mean(tfd.Normal(prediction, 1.0).log_prob(tf.stop_gradient(targets)))

    # --- Targets -------------------------------------------------------------

    def copy_targets(self) -> None:
        pairs = ((self.target_critic, self.critic), (self.target_safety_critic, self.safety_critic))
        for target_network, network in pairs:
            for target, source in zip(target_network.variables, network.variables):
                target.assign(source)

    def copy_targets_when_due(self) -> None:
        """After an update: copies the critics every ``target_update_every`` updates."""
        if int(self.updates.numpy()) % self.config.target_update_every == 0:
            self.copy_targets()


def _apply(tape, loss, variables, optimizer) -> None:
    gradients = tape.gradient(loss, variables)
    optimizer.apply_gradients(zip(gradients, variables))
