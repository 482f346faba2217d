"""Lambda-returns and generalized advantage estimates, forward-ordered.

Shapes: time is the last axis, anything before it is batch. For a trajectory
of H steps, ``rewards`` [..., H] r_t, ``next_values`` [..., H] V(s_{t+1}),
``continues`` [..., H] 1 - terminal_{t+1} (or a probability of continuing):

    R_{H-1} = r_{H-1} + gamma c_{H-1} V(s_H)
    R_t     = r_t + gamma c_t ((1 - lambda) V(s_{t+1}) + lambda R_{t+1})

The recursion runs backwards in time, and the result is returned in forward
order: ``returns[..., t]`` is R_t, the target of V(s_t). LAMBDA's published
implementation builds the same recursion in a reversed loop and never flips
the result back, so its critic targets are in reverse time order (R_{H-1}
paired with V(s_0)); ``tests/test_returns.py`` shows the difference.
"""

from __future__ import annotations

import tensorflow as tf


def lambda_returns(rewards, next_values, continues, discount: float, lambda_: float):
    """TD(lambda) targets R_t [..., H] (see the module docstring)."""
    rewards = tf.convert_to_tensor(rewards)
    next_values = tf.cast(next_values, rewards.dtype)
    continues = tf.cast(continues, rewards.dtype)
    # Time first for tf.scan, which then returns the results in forward order.
    perm = _time_first(rewards.shape.rank)
    rewards_t, values_t, continues_t = (tf.transpose(x, perm) for x in
                                        (rewards, next_values, continues))  # fmt: skip
    bootstrap = values_t[-1]
    # One-step part and the lambda-weighted tail, per step.
    inputs = (rewards_t + discount * continues_t * (1 - lambda_) * values_t, continues_t)

    def step(following, elements):
        partial, keep = elements
        return partial + discount * keep * lambda_ * following

    returns_t = tf.scan(step, inputs, initializer=bootstrap, reverse=True)
    return tf.transpose(returns_t, _inverse(perm))


def generalized_advantages(rewards, values, next_values, continues, discount: float,
                           lambda_: float, trace=None):  # fmt: skip
    """GAE: A_t = delta_t + gamma lambda k_t A_{t+1} with delta_t = r_t +
    gamma c_t V(s_{t+1}) - V(s_t); all [..., H].

    ``continues`` c_t (1 - terminal) decides whether V(s_{t+1}) is
    bootstrapped; ``trace`` k_t (default c_t) whether A_{t+1} belongs to the
    same path. Streams of several paths set k_t = 0 at every path end: with
    c_t = 1 where a path was cut (time limit, end of a batch, a model rollout
    stopped), V(s_{t+1}) then stands for the rest of it."""
    rewards = tf.convert_to_tensor(rewards)
    values = tf.cast(values, rewards.dtype)
    next_values = tf.cast(next_values, rewards.dtype)
    continues = tf.cast(continues, rewards.dtype)
    trace = continues if trace is None else tf.cast(trace, rewards.dtype)
    deltas = rewards + discount * continues * next_values - values
    perm = _time_first(rewards.shape.rank)
    deltas_t, continues_t = tf.transpose(deltas, perm), tf.transpose(trace, perm)

    def step(following, elements):
        delta, keep = elements
        return delta + discount * lambda_ * keep * following

    advantages_t = tf.scan(step, (deltas_t, continues_t), initializer=tf.zeros_like(deltas_t[0]),
                           reverse=True)  # fmt: skip
    return tf.transpose(advantages_t, _inverse(perm))


def _time_first(rank: int) -> list[int]:
    return [rank - 1, *range(rank - 1)]


def _inverse(perm: list[int]) -> list[int]:
    inverse = [0] * len(perm)
    for index, axis in enumerate(perm):
        inverse[axis] = index
    return inverse
