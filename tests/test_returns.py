"""Lambda-returns and GAE against float64 NumPy references."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from saferl_tf.rl.returns import generalized_advantages, lambda_returns


def numpy_lambda_returns(rewards, next_values, continues, discount, lambda_):
    """Straight from the definition, one trajectory at a time, float64."""
    horizon = rewards.shape[-1]
    returns = np.zeros_like(rewards, dtype=np.float64)
    following = next_values[..., -1]
    for t in reversed(range(horizon)):
        following = rewards[..., t] + discount * continues[..., t] * (
            (1 - lambda_) * next_values[..., t] + lambda_ * following
        )
        returns[..., t] = following
    return returns


def numpy_n_step_mixture(rewards, next_values, continues, discount, lambda_):
    """R_0 as the lambda-weighted mixture of n-step returns (a second, independent
    reference): (1 - lambda) sum_n lambda^(n-1) G_n + lambda^(H-1) G_H."""
    horizon = rewards.shape[0]

    def n_step(n):
        total, scale = 0.0, 1.0
        for k in range(n):
            total += scale * rewards[k]
            scale *= discount * continues[k]
        return total + scale * next_values[n - 1]

    mixture = sum((1 - lambda_) * lambda_ ** (n - 1) * n_step(n) for n in range(1, horizon))
    return mixture + lambda_ ** (horizon - 1) * n_step(horizon)


@pytest.fixture
def trajectory():
    rng = np.random.default_rng(0)
    shape = (3, 4, 15)  # Two batch axes, horizon 15.
    return (rng.normal(size=shape), rng.normal(size=shape),
            (rng.random(shape) > 0.1).astype(np.float64))  # fmt: skip


def test_lambda_returns_match_numpy_in_forward_order(trajectory):
    rewards, next_values, continues = trajectory
    expected = numpy_lambda_returns(rewards, next_values, continues, 0.99, 0.95)
    got = lambda_returns(rewards, next_values, continues, 0.99, 0.95).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    first = numpy_n_step_mixture(rewards[0, 0], next_values[0, 0], continues[0, 0], 0.99, 0.95)
    assert got[0, 0, 0] == pytest.approx(first, rel=1e-10)
    # float32 inside a compiled function, as the agents call it.
    compiled = tf.function(lambda *x: lambda_returns(*x, 0.99, 0.95), jit_compile=True)
    got32 = compiled(*(tf.constant(x, tf.float32) for x in trajectory)).numpy()
    np.testing.assert_allclose(got32, expected, rtol=1e-4, atol=1e-4)


def test_the_published_reversed_order_is_not_the_target(trajectory):
    rewards, next_values, continues = trajectory
    got = lambda_returns(rewards, next_values, continues, 0.99, 0.95).numpy()
    # LAMBDA's code wrote R_{H-1}, ..., R_0 at indices 0..H-1: the same numbers
    # in reverse. They pair V(s_0) with R_{H-1}, which is not its target.
    published = got[..., ::-1]
    assert not np.allclose(published, got)
    np.testing.assert_allclose(np.sort(published, -1), np.sort(got, -1))


def test_limits_of_lambda(trajectory):
    rewards, next_values, continues = trajectory
    one_step = rewards + 0.9 * continues * next_values
    np.testing.assert_allclose(lambda_returns(rewards, next_values, continues, 0.9, 0.0),
                               one_step, rtol=1e-12)  # fmt: skip
    # lambda = 1, no terminals, discount 1: the plain sum plus the last value.
    ones = np.ones_like(rewards)
    monte_carlo = np.cumsum(rewards[..., ::-1], -1)[..., ::-1] + next_values[..., -1:]
    np.testing.assert_allclose(lambda_returns(rewards, next_values, ones, 1.0, 1.0),
                               monte_carlo, rtol=1e-10)  # fmt: skip


def test_generalized_advantages_match_numpy(trajectory):
    rewards, next_values, continues = trajectory
    values = np.random.default_rng(1).normal(size=rewards.shape)
    deltas = rewards + 0.99 * continues * next_values - values
    expected = np.zeros_like(deltas)
    following = np.zeros(deltas.shape[:-1])
    for t in reversed(range(deltas.shape[-1])):
        following = deltas[..., t] + 0.99 * 0.95 * continues[..., t] * following
        expected[..., t] = following
    got = generalized_advantages(rewards, values, next_values, continues, 0.99, 0.95)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-10, atol=1e-12)
    # GAE plus V(s_t) is the lambda-return when the values are consistent.
    consistent = np.concatenate([values[..., 1:], next_values[..., -1:]], -1)
    gae = generalized_advantages(rewards, values, consistent, np.ones_like(rewards), 0.99, 0.95)
    returns = lambda_returns(rewards, consistent, np.ones_like(rewards), 0.99, 0.95)
    np.testing.assert_allclose(gae.numpy() + values, returns.numpy(), rtol=1e-10)


def test_gae_over_a_stream_of_paths_equals_gae_per_path():
    """A stream of three paths (a termination, a cut with a bootstrap, the end
    of the batch) gives each path's own GAE, checked against a float64 loop."""
    rng = np.random.default_rng(4)
    lengths, ends = [4, 3, 5], ["terminated", "cut", "cut"]
    rewards = rng.normal(size=sum(lengths))
    values = rng.normal(size=sum(lengths))
    next_values = rng.normal(size=sum(lengths))
    continues, trace = np.ones(sum(lengths)), np.ones(sum(lengths))
    expected, offset = np.zeros(sum(lengths)), 0
    for length, end in zip(lengths, ends):
        last = offset + length - 1
        trace[last] = 0.0
        if end == "terminated":
            continues[last] = 0.0
        following = 0.0
        for t in reversed(range(offset, offset + length)):
            delta = rewards[t] + 0.97 * continues[t] * next_values[t] - values[t]
            following = delta + 0.97 * 0.5 * (t < last) * following
            expected[t] = following
        offset += length
    got = generalized_advantages(rewards, values, next_values, continues, 0.97, 0.5, trace=trace)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12)
    # Without the trace the paths would leak into each other.
    leaked = generalized_advantages(rewards, values, next_values, continues, 0.97, 0.5)
    assert not np.allclose(leaked.numpy(), expected)
