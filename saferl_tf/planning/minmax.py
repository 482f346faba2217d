"""Min-max CEM: alternating CEM over actions (minimizing) and hallucinated
controls η (maximizing).

For an objective J(actions [N, H, A], eta [N, H, S]) -> [N], ``minmax_cem``
approximates min over actions of max over η ∈ [eta_low, eta_high]^{H×S}.
Each of ``outer_iterations`` rounds runs

1. a maximizing CEM over η (``inner_iterations`` CEM iterations) against the
   current elite action sequence, whose best η becomes the elite η, then
2. a minimizing CEM over actions against the current elite η, whose best
   sequence becomes the elite action sequence.

Both sampling distributions carry over between rounds. The objective must
broadcast a leading axis of size 1: the adversary's step calls it with the
elite actions [1, H, A] and N η's, the agent's step with N action sequences
and the elite η [1, H, S]. Pure TensorFlow with static shapes::

    result = minmax_cem(objective, action_mean [H, A], eta_mean [H, S], config, seed [2])
    result.actions  # [H, A], the elite action sequence; result.eta: [H, S]
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import NamedTuple

import tensorflow as tf

from saferl_tf.errors import ConfigError
from saferl_tf.planning.cem import CEMConfig, elite_update, sample_sequences


@dataclasses.dataclass
class MinMaxConfig:
    """Settings of both players. Actions use ``actions``'s CEM settings (its
    ``iterations`` are ignored: ``inner_iterations`` applies to both)."""

    actions: CEMConfig = dataclasses.field(default_factory=CEMConfig)
    outer_iterations: int = 10
    inner_iterations: int = 1
    eta_samples: int = 500
    eta_elites: int = 50
    eta_initial_std: float = 1.0
    eta_low: float = -1.0
    eta_high: float = 1.0

    def check(self) -> None:
        self.actions.check()
        if min(self.outer_iterations, self.inner_iterations, self.eta_samples, self.eta_elites) < 1:
            raise ConfigError("min-max CEM needs iterations, eta_samples and eta_elites >= 1")
        if self.eta_elites > self.eta_samples:
            raise ConfigError(
                f"eta_elites ({self.eta_elites}) cannot exceed eta_samples ({self.eta_samples})"
            )


class MinMaxResult(NamedTuple):
    actions: tf.Tensor  # [H, A] elite action sequence
    eta: tf.Tensor  # [H, S] elite hallucinated controls
    value: tf.Tensor  # [] J(actions, eta)
    action_mean: tf.Tensor  # [H, A] the action distribution's mean (warm start)
    eta_mean: tf.Tensor  # [H, S]


def minmax_cem(
    objective: Callable[[tf.Tensor, tf.Tensor], tf.Tensor],
    action_mean: tf.Tensor,
    eta_mean: tf.Tensor,
    config: MinMaxConfig,
    seed: tf.Tensor,
) -> MinMaxResult:
    """See the module docstring. action_mean [H, A], eta_mean [H, S], seed [2] int32."""
    act = config.actions
    action_mean = tf.convert_to_tensor(action_mean, tf.float32)
    eta_mean = tf.convert_to_tensor(eta_mean, tf.float32)
    action_std = tf.fill(tf.shape(action_mean), tf.constant(act.initial_std, tf.float32))
    eta_std = tf.fill(tf.shape(eta_mean), tf.constant(config.eta_initial_std, tf.float32))
    seeds = tf.random.experimental.stateless_split(
        tf.cast(seed, tf.int32), 2 * config.outer_iterations * config.inner_iterations
    )
    inner = config.inner_iterations

    def adversary(round_, eta_mean, eta_std, elite_actions):
        """Maximize J over η against the elite actions: the best η seen."""

        def body(i, eta_mean, eta_std, best, best_value):
            etas = sample_sequences(
                eta_mean, eta_std, config.eta_samples, config.eta_low, config.eta_high,
                seeds[2 * round_ * inner + i],
            )  # fmt: skip
            values = objective(elite_actions[None], etas)
            eta_mean, eta_std, candidate, negative = elite_update(
                etas, -values, config.eta_elites, eta_mean, eta_std, 0.0
            )
            better = -negative > best_value
            best = tf.where(better, candidate, best)
            return i + 1, eta_mean, eta_std, best, tf.where(better, -negative, best_value)

        start = [tf.constant(0), eta_mean, eta_std, eta_mean, tf.constant(-float("inf"))]
        return tf.while_loop(lambda i, *_: i < inner, body, start)[1:]

    def player(round_, action_mean, action_std, elite_eta):
        """Minimize J over actions against the elite η: the best sequence seen."""

        def body(i, action_mean, action_std, best, best_value):
            actions = sample_sequences(
                action_mean, action_std, act.samples, act.low, act.high,
                seeds[(2 * round_ + 1) * inner + i],
            )  # fmt: skip
            values = objective(actions, elite_eta[None])
            action_mean, action_std, candidate, value = elite_update(
                actions, values, act.elites, action_mean, action_std, act.momentum
            )
            better = value < best_value
            best = tf.where(better, candidate, best)
            return i + 1, action_mean, action_std, best, tf.where(better, value, best_value)

        start = [tf.constant(0), action_mean, action_std, action_mean, tf.constant(float("inf"))]
        return tf.while_loop(lambda i, *_: i < inner, body, start)[1:]

    def round_body(round_, action_mean, action_std, eta_mean, eta_std, elite_actions, _, __):
        eta_mean, eta_std, elite_eta, _ = adversary(round_, eta_mean, eta_std, elite_actions)
        action_mean, action_std, elite_actions, value = player(
            round_, action_mean, action_std, elite_eta
        )
        return (
            round_ + 1,
            action_mean,
            action_std,
            eta_mean,
            eta_std,
            elite_actions,
            elite_eta,
            value,
        )

    _, action_mean, _, eta_mean, _, elite_actions, elite_eta, value = tf.while_loop(
        lambda round_, *_: round_ < config.outer_iterations,
        round_body,
        [
            tf.constant(0),
            action_mean,
            action_std,
            eta_mean,
            eta_std,
            tf.clip_by_value(action_mean, act.low, act.high),
            tf.clip_by_value(eta_mean, config.eta_low, config.eta_high),
            tf.constant(0.0),
        ],
    )
    return MinMaxResult(elite_actions, elite_eta, value, action_mean, eta_mean)
