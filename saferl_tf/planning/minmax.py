"""Min-max CEM: alternating CEM over actions (minimizing) and hallucinated
controls η (maximizing).

For an objective J(actions [N, H, A], eta [M, H, S]) -> [N, M] (every pair),
``minmax_cem`` approximates min over actions of max over η ∈ [eta_low,
eta_high]^{H×S}. Each player is represented to the other by its
``opponent_elites`` best samples (its *fixed elites*) and scores a candidate
by the average of J over them. Each of ``rounds`` rounds runs

1. a maximizing CEM over η (``iterations`` CEM iterations) against the
   actions' fixed elites, then
2. a minimizing CEM over actions (``iterations``) against the η's new
   fixed elites.

One CEM call keeps the best elite set it has seen (the iteration whose best
sample is the best so far); the player's next mean is that set's mean and
its fixed elites are the set's best ``opponent_elites``. Its std restarts at
the initial std in every call (``carry_std`` False, as SafeExploration's
min-max optimizer) or carries over as that set's std. The sequence to follow
is the best action sample of the last call. Pure TensorFlow with static
shapes::

    state = MinMaxState.initial(horizon, action_size, eta_size, config)
    result = minmax_cem(objective, state, config, seed [2])
    result.actions   # [H, A], the best action sequence; result.eta: [H, S]
    state = next_state(result.state, config)   # the next control step's warm start

``next_state`` shifts both players' means and fixed elites by one step
(``warm_start="shift_all"``: the last step repeated, SafeExploration's
intent) or keeps only the action mean, zero-filled, and starts η and both
elite sets afresh from the means (``warm_start="mean"``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import NamedTuple

import tensorflow as tf

from saferl_tf.errors import ConfigError
from saferl_tf.planning.cem import CEMConfig, sample_batches, shift_plan, split_seeds

WARM_STARTS = ("mean", "shift_all")


@dataclasses.dataclass
class MinMaxConfig:
    """Settings of both players. ``actions`` holds the action player's CEM
    settings; its ``iterations`` are each player's CEM iterations per round."""

    actions: CEMConfig = dataclasses.field(default_factory=CEMConfig)
    rounds: int = 10
    eta_samples: int = 500
    eta_elites: int = 50
    eta_initial_std: float = 1.0
    eta_low: float = -1.0
    eta_high: float = 1.0
    opponent_elites: int = 1  # Fixed elites each player shows the other.
    carry_std: bool = True  # False: every CEM call restarts at its initial std.
    warm_start: str = "mean"

    def check(self) -> None:
        self.actions.check()
        if min(self.rounds, self.eta_samples, self.eta_elites, self.opponent_elites) < 1:
            raise ConfigError(
                "min-max CEM needs rounds, eta_samples, eta_elites and opponent_elites >= 1"
            )
        if self.eta_elites > self.eta_samples:
            raise ConfigError(
                f"eta_elites ({self.eta_elites}) cannot exceed eta_samples ({self.eta_samples})"
            )
        if self.opponent_elites > min(self.actions.elites, self.eta_elites):
            raise ConfigError(
                f"opponent_elites ({self.opponent_elites}) cannot exceed either player's elites "
                f"({self.actions.elites} and {self.eta_elites})"
            )
        if self.warm_start not in WARM_STARTS:
            raise ConfigError(
                f"unknown warm_start {self.warm_start!r}; accepted: {', '.join(WARM_STARTS)}"
            )


class MinMaxState(NamedTuple):
    """Where a min-max search starts: both players' means and fixed elites."""

    action_mean: tf.Tensor  # [H, A]
    eta_mean: tf.Tensor  # [H, S]
    action_elites: tf.Tensor  # [K, H, A]
    eta_elites: tf.Tensor  # [K, H, S]

    @staticmethod
    def initial(horizon: int, action_size: int, eta_size: int, config: MinMaxConfig):
        """Zeros: the start of an episode."""
        k = config.opponent_elites
        return MinMaxState(
            tf.zeros([horizon, action_size]),
            tf.zeros([horizon, eta_size]),
            tf.zeros([k, horizon, action_size]),
            tf.zeros([k, horizon, eta_size]),
        )


class MinMaxResult(NamedTuple):
    actions: tf.Tensor  # [H, A] the best action sequence of the last round
    eta: tf.Tensor  # [H, S] the η player's best sequence of the last round
    value: tf.Tensor  # [] that action sequence's score against the η's fixed elites
    state: MinMaxState  # the players' means and fixed elites at the end


def next_state(state: MinMaxState, config: MinMaxConfig, batched: bool = False) -> MinMaxState:
    """The next control step's start (see the module docstring); ``batched``:
    every part has a leading batch axis."""
    step = 1 if batched else 0  # The horizon axis of a mean; an elite set's is one further.
    if config.warm_start == "shift_all":
        return MinMaxState(
            shift_plan(state.action_mean, axis=step, repeat_last=True),
            shift_plan(state.eta_mean, axis=step, repeat_last=True),
            shift_plan(state.action_elites, axis=step + 1, repeat_last=True),
            shift_plan(state.eta_elites, axis=step + 1, repeat_last=True),
        )
    action_mean = shift_plan(state.action_mean, axis=step)
    eta_mean = tf.zeros_like(state.eta_mean)
    return MinMaxState(
        action_mean,
        eta_mean,
        tf.broadcast_to(tf.expand_dims(action_mean, step), state.action_elites.shape),
        tf.broadcast_to(tf.expand_dims(eta_mean, step), state.eta_elites.shape),
    )


def _cem_call(score, mean, std, samples: int, elites: int, iterations: int, low, high,
              momentum: float, seeds):  # fmt: skip
    """One player's CEM call, per batch entry, minimizing ``score(samples
    [B, N, ...]) -> [B, N]``; mean, std [B, ...], seeds [B, 2].

    Returns the best elite set seen (sorted best first) [B, elites, ...], its
    mean and std, and the set's best score [B]."""
    seeds = split_seeds(seeds, iterations)  # [I, B, 2]
    batch = mean.shape[0]
    shape = [batch, elites, *mean.shape[1:]]
    expand = [slice(None)] + [None] * (len(shape) - 1)

    def body(i, mean, std, best_set, best_value):
        candidates = sample_batches(mean, std, samples, low, high, seeds[i])
        values = score(candidates)
        _, index = tf.math.top_k(-values, k=elites)
        chosen = tf.gather(candidates, index, batch_dims=1)
        mean = momentum * mean + (1.0 - momentum) * tf.reduce_mean(chosen, 1)
        std = momentum * std + (1.0 - momentum) * tf.math.reduce_std(chosen, 1)
        value = tf.gather(values, index[:, 0], batch_dims=1)
        better = value <= best_value  # A tie goes to the newer set, as the seed's CEM.
        return (i + 1, mean, std, tf.where(better[tuple(expand)], chosen, best_set),
                tf.where(better, value, best_value))  # fmt: skip

    start = [tf.constant(0), mean, std, tf.zeros(shape), tf.fill([batch], float("inf"))]
    _, _, _, best_set, best_value = tf.while_loop(lambda i, *_: i < iterations, body, start)
    return best_set, tf.reduce_mean(best_set, 1), tf.math.reduce_std(best_set, 1), best_value


def minmax_cem(
    objective: Callable[[tf.Tensor, tf.Tensor], tf.Tensor],
    state: MinMaxState,
    config: MinMaxConfig,
    seed: tf.Tensor,
) -> MinMaxResult:
    """See the module docstring. ``objective(actions [N, H, A], eta [M, H, S])
    -> [N, M]``; seed [2] int32."""
    result = minmax_cem_batched(
        lambda actions, eta: objective(actions[0], eta[0])[None],
        MinMaxState(*(tf.convert_to_tensor(part, tf.float32)[None] for part in state)),
        config, tf.convert_to_tensor(seed)[None],
    )  # fmt: skip
    return MinMaxResult(result.actions[0], result.eta[0], result.value[0],
                        MinMaxState(*(part[0] for part in result.state)))  # fmt: skip


def minmax_cem_batched(
    objective: Callable[[tf.Tensor, tf.Tensor], tf.Tensor],
    state: MinMaxState,
    config: MinMaxConfig,
    seeds: tf.Tensor,
    adversary: bool = True,
) -> MinMaxResult:
    """B independent searches at once (B environments): ``objective(actions
    [B, N, H, A], eta [B, M, H, S]) -> [B, N, M]``; every part of ``state``
    and of the result has a leading batch axis; seeds [B, 2]. Entry b gives
    what ``minmax_cem`` with seeds[b] gives.

    ``adversary=False`` is for an objective that does not depend on η: the η
    player's calls are skipped (its mean and fixed elites stay as given) and
    the action player's rounds draw the same seeds, so the actions are those
    the full search would choose, at a fraction of the work."""
    act = config.actions
    k = config.opponent_elites
    action_mean = tf.convert_to_tensor(state.action_mean, tf.float32)
    eta_mean = tf.convert_to_tensor(state.eta_mean, tf.float32)
    action_std0 = tf.fill(tf.shape(action_mean), tf.constant(act.initial_std, tf.float32))
    eta_std0 = tf.fill(tf.shape(eta_mean), tf.constant(config.eta_initial_std, tf.float32))
    seeds = split_seeds(tf.cast(seeds, tf.int32), 2 * config.rounds)  # [2R, B, 2]

    def round_body(r, action_mean, action_std, eta_mean, eta_std, action_elites, eta_elites,
                   best_actions, best_eta, value):  # fmt: skip
        if adversary:
            # The η player maximizes the average J over the actions' fixed elites.
            eta_set, eta_mean, eta_std_new, _ = _cem_call(
                lambda etas: -tf.reduce_mean(objective(action_elites, etas), axis=1),
                eta_mean, eta_std if config.carry_std else eta_std0, config.eta_samples,
                config.eta_elites, act.iterations, config.eta_low, config.eta_high, 0.0,
                seeds[2 * r],
            )  # fmt: skip
            eta_elites = eta_set[:, :k]
        else:
            eta_set, eta_std_new = eta_elites, eta_std
        # The action player minimizes the average J over the η's fixed elites.
        action_set, action_mean, action_std_new, value = _cem_call(
            lambda actions: tf.reduce_mean(objective(actions, eta_elites), axis=2),
            action_mean, action_std if config.carry_std else action_std0, act.samples,
            act.elites, act.iterations, act.low, act.high, act.momentum, seeds[2 * r + 1],
        )  # fmt: skip
        return (r + 1, action_mean, action_std_new, eta_mean, eta_std_new, action_set[:, :k],
                eta_elites, action_set[:, 0], eta_set[:, 0], value)  # fmt: skip

    start = [
        tf.constant(0),
        action_mean,
        action_std0,
        eta_mean,
        eta_std0,
        tf.clip_by_value(tf.convert_to_tensor(state.action_elites, tf.float32), act.low, act.high),
        tf.clip_by_value(
            tf.convert_to_tensor(state.eta_elites, tf.float32), config.eta_low, config.eta_high
        ),  # fmt: skip
        tf.zeros_like(action_mean),
        tf.zeros_like(eta_mean),
        tf.zeros([action_mean.shape[0]]),
    ]
    out = tf.while_loop(lambda r, *_: r < config.rounds, round_body, start)
    _, action_mean, _, eta_mean, _, action_elites, eta_elites, best_actions, best_eta, value = out
    return MinMaxResult(best_actions, best_eta, value,
                        MinMaxState(action_mean, eta_mean, action_elites, eta_elites))  # fmt: skip
