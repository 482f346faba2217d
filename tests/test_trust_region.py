"""Trust-region pieces against NumPy: conjugate gradient, Fisher-vector products
(an analytic Fisher matrix of a linear Gaussian policy), flat parameters and the
backtracking line search."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from saferl_tf.rl.trust_region import (
    assign_flat,
    backtracking_line_search,
    conjugate_gradient,
    fisher_vector_product,
    flatten,
    unflatten,
)

tfd = tfp.distributions


@pytest.mark.parametrize("size, seed", [(3, 0), (8, 1), (20, 2)])
def test_conjugate_gradient_solves_a_random_spd_system(size, seed):
    rng = np.random.default_rng(seed)
    m = rng.normal(size=(size, size))
    a = m @ m.T + 0.5 * np.eye(size)
    b = rng.normal(size=size)
    a_tf = tf.constant(a)
    x = conjugate_gradient(lambda v: tf.linalg.matvec(a_tf, v), tf.constant(b), iterations=2 * size)
    np.testing.assert_allclose(x.numpy(), np.linalg.solve(a, b), rtol=1e-6, atol=1e-8)
    # Fewer iterations: an approximation, not the answer (the count is used).
    few = conjugate_gradient(lambda v: tf.linalg.matvec(a_tf, v), tf.constant(b), iterations=1)
    if size > 3:
        assert not np.allclose(few.numpy(), np.linalg.solve(a, b), rtol=1e-3)


def test_conjugate_gradient_stops_cleanly_once_converged():
    """Extra iterations after convergence leave the answer (no 0 / 0)."""
    a = tf.constant(np.diag([1.0, 2.0, 4.0]))
    b = tf.constant([1.0, 1.0, 1.0], tf.float64)
    x = conjugate_gradient(lambda v: tf.linalg.matvec(a, v), b, iterations=25)
    np.testing.assert_allclose(x.numpy(), [1.0, 0.5, 0.25], rtol=1e-12)
    assert np.all(np.isfinite(x.numpy()))


def test_conjugate_gradient_traces_once_under_xla():
    traces = []

    @tf.function(jit_compile=True)
    def solve(a, b):
        traces.append(1)
        return conjugate_gradient(lambda v: tf.linalg.matvec(a, v), b, iterations=4)

    rng = np.random.default_rng(0)
    for _ in range(3):
        m = rng.normal(size=(4, 4)).astype(np.float32)
        a = m @ m.T + np.eye(4, dtype=np.float32)
        b = rng.normal(size=4).astype(np.float32)
        np.testing.assert_allclose(solve(a, b).numpy(), np.linalg.solve(a, b), rtol=1e-3)
    assert len(traces) == 1


def _linear_gaussian(states, sizes):
    """A linear Gaussian policy mu = s W + c, log sigma free, as a function of a
    flat vector theta = [W (S x A), c (A), log sigma (A)]."""
    s, a = sizes

    def distribution(theta):
        w = tf.reshape(theta[: s * a], [s, a])
        c = theta[s * a : s * a + a]
        log_std = theta[s * a + a :]
        return tfd.MultivariateNormalDiag(
            states @ w + c, tf.exp(log_std) * tf.ones([1, a], theta.dtype)
        )

    return distribution


def test_fisher_vector_products_match_the_analytic_fisher_of_a_gaussian_policy():
    rng = np.random.default_rng(3)
    s, a, n = 3, 2, 7
    states = rng.normal(size=(n, s))
    theta_old = rng.normal(size=s * a + 2 * a) * 0.5
    distribution = _linear_gaussian(tf.constant(states), (s, a))
    old = distribution(tf.constant(theta_old))

    def mean_kl(theta):
        return tf.reduce_mean(tfd.kl_divergence(old, distribution(theta)))

    # Analytic: mean over states of J^T diag(1 / sigma^2) J for the mean
    # parameters, 2 on the diagonal for each log sigma, no cross terms.
    sigma2 = np.exp(2 * theta_old[s * a + a :])
    size = theta_old.size
    fisher = np.zeros((size, size))
    for state in states:
        jacobian = np.zeros((a, size))  # d mu / d theta
        for j in range(a):
            jacobian[j, [i * a + j for i in range(s)]] = state
            jacobian[j, s * a + j] = 1.0
        fisher += jacobian.T @ np.diag(1 / sigma2) @ jacobian / n
    fisher[s * a + a :, s * a + a :] += 2 * np.eye(a)
    damping = 0.1
    for _ in range(3):
        v = rng.normal(size=size)
        ours = fisher_vector_product(mean_kl, tf.constant(theta_old), tf.constant(v), damping)
        np.testing.assert_allclose(ours.numpy(), fisher @ v + damping * v, rtol=1e-8, atol=1e-10)


def test_flat_parameters_round_trip():
    variables = [
        tf.Variable(np.arange(6.0).reshape(2, 3)),
        tf.Variable([7.0, 8.0], dtype=tf.float64),
    ]
    vector = flatten(variables)
    np.testing.assert_array_equal(vector.numpy(), [0, 1, 2, 3, 4, 5, 7, 8])
    assign_flat(variables, vector * 2)
    np.testing.assert_array_equal(variables[0].numpy(), np.arange(6.0).reshape(2, 3) * 2)
    np.testing.assert_array_equal(variables[1].numpy(), [14.0, 16.0])
    with pytest.raises(ValueError, match="cannot fill"):
        unflatten(tf.zeros(10, tf.float64), variables)


@pytest.mark.parametrize("threshold, expected_k", [(1.0, 0), (0.5, 4), (0.2, 8), (0.05, 10)])
def test_the_line_search_takes_the_first_accepted_fraction(threshold, expected_k):
    """Accept when |theta| <= threshold along a unit step from 0: k is the first
    with 0.8^k <= threshold; none accepted leaves theta."""
    theta = tf.zeros(2, tf.float64)
    step = tf.constant([1.0, 0.0], tf.float64)
    found, new, k = backtracking_line_search(
        lambda c: tf.norm(c) <= threshold, theta, step, 10, 0.8
    )
    reference = next((j for j in range(10) if 0.8**j <= threshold), 10)
    assert reference == expected_k and int(k) == expected_k
    assert bool(found) == (expected_k < 10)
    expected = [0.8**expected_k if expected_k < 10 else 0.0, 0.0]
    np.testing.assert_allclose(new.numpy(), expected, rtol=1e-12)
