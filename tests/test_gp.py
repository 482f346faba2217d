"""GP gradient posteriors (GIBO): against autodiff of GPflow, NumPy, and brute force."""

from __future__ import annotations

import gpflow
import numpy as np
import pytest
import tensorflow as tf

from saferl_tf.search import gradient_gp as gp


@pytest.fixture
def problem():
    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, (12, 3))
    y = np.sin(2 * x[:, 0]) + x[:, 1] * x[:, 2] + 0.05 * rng.normal(size=12)
    y = y - y.mean()
    lengthscales = np.array([0.4, 0.7, 1.3])
    model = gpflow.models.GPR(
        (x, y[:, None]),
        gpflow.kernels.SquaredExponential(variance=1.7, lengthscales=lengthscales),
        noise_variance=0.01,
    )
    theta = np.array([0.1, -0.2, 0.3])
    return x, y, model, theta


def numpy_gradient_posterior(theta, x, y, lengthscales, signal, noise, squared=True):
    """Float64 reference, written from the formulas independently of gp.py."""
    scale = lengthscales**2 if squared else lengthscales
    diff = (x[:, None, :] - x[None, :, :]) / lengthscales
    gram = signal * np.exp(-0.5 * (diff**2).sum(-1)) + noise * np.eye(len(x))
    k_theta = signal * np.exp(-0.5 * (((theta - x) / lengthscales) ** 2).sum(-1))  # [N]
    k_grad = -((theta - x) / scale).T * k_theta  # [D, N]
    inverse = np.linalg.inv(gram)
    mean = k_grad @ inverse @ y
    cov = np.diag(signal / scale) - k_grad @ inverse @ k_grad.T
    return mean, cov


def test_gradient_posterior_matches_autodiff_of_gpflow_and_numpy(problem):
    x, y, model, theta = problem
    hyper = gp.Hyperparameters.from_gpflow(model)
    mean, cov = gp.gradient_posterior(tf.constant(theta), tf.constant(x), tf.constant(y), hyper)

    # Mean: the gradient of GPflow's posterior mean.
    point = tf.Variable(theta[None, :])
    with tf.GradientTape() as tape:
        predicted, _ = model.predict_f(point)
    np.testing.assert_allclose(mean.numpy(), tape.gradient(predicted, point).numpy()[0], rtol=1e-8)

    # Covariance: d^2 k_post(a, b) / da db at a = b = theta, with
    # k_post(a, b) = k(a, b) - k(a, X) (K + noise I)^-1 k(X, b).
    kernel, data = model.kernel, tf.constant(x)
    inverse = tf.linalg.inv(kernel(data) + 0.01 * tf.eye(12, dtype=tf.float64))
    a, b = tf.Variable(theta[None, :]), tf.Variable(theta[None, :])
    with tf.GradientTape() as outer:
        with tf.GradientTape() as inner:
            posterior = kernel(a, b) - kernel(a, data) @ inverse @ kernel(data, b)
        grad_a = inner.gradient(posterior, a)[0]  # [D]
    hessian = outer.jacobian(grad_a, b)[:, 0, :]  # [D, D]
    np.testing.assert_allclose(cov.numpy(), hessian.numpy(), rtol=1e-7, atol=1e-10)

    lengthscales = model.kernel.lengthscales.numpy()
    reference_mean, reference_cov = numpy_gradient_posterior(theta, x, y, lengthscales, 1.7, 0.01)
    np.testing.assert_allclose(mean.numpy(), reference_mean, rtol=1e-8)
    np.testing.assert_allclose(cov.numpy(), reference_cov, rtol=1e-8, atol=1e-12)


def test_unsquared_lengthscales_are_wrong(problem):
    # The first published GIBO acquisition used Lambda^-1 where Lambda^-2 belongs.
    x, y, model, theta = problem
    lengthscales = model.kernel.lengthscales.numpy()
    hyper = gp.Hyperparameters.from_gpflow(model)
    mean, cov = gp.gradient_posterior(tf.constant(theta), tf.constant(x), tf.constant(y), hyper)
    wrong_mean, wrong_cov = numpy_gradient_posterior(theta, x, y, lengthscales, 1.7, 0.01, False)
    assert np.abs(wrong_mean - mean.numpy()).max() > 0.1
    assert np.abs(np.diag(wrong_cov) - np.diag(cov.numpy())).max() > 0.1


def test_cholesky_append_equals_full_factorization(problem):
    x, _, model, _ = problem
    hyper = gp.Hyperparameters.from_gpflow(model)
    full = gp.cholesky(tf.constant(x), hyper)
    first = gp.cholesky(tf.constant(x[:-1]), hyper)
    cross = gp.se_kernel(tf.constant(x[:-1]), tf.constant(x[-1:]), hyper.lengthscales,
                         hyper.signal_variance)[:, 0]  # fmt: skip
    appended = gp.cholesky_append(first, cross, hyper.signal_variance + hyper.noise_variance)
    np.testing.assert_allclose(appended.numpy(), full.numpy(), rtol=1e-10, atol=1e-12)


def test_gradient_information_equals_brute_force_recomputation(problem):
    x, y, model, theta = problem
    hyper = gp.Hyperparameters.from_gpflow(model)
    candidates = np.random.default_rng(0).uniform(-0.5, 0.5, (7, 3)) + theta
    traces = gp.gradient_information(
        tf.constant(theta), tf.constant(x), tf.constant(candidates), hyper
    )
    for candidate, trace in zip(candidates, traces.numpy()):
        augmented = np.vstack([x, candidate])
        # The covariance does not depend on the observation, so any target works.
        _, cov = gp.gradient_posterior(tf.constant(theta), tf.constant(augmented),
                                       tf.constant(np.append(y, 0.0)), hyper)  # fmt: skip
        assert trace == pytest.approx(np.trace(cov.numpy()), rel=1e-9)
    _, current = gp.gradient_posterior(tf.constant(theta), tf.constant(x), tf.constant(y), hyper)
    assert np.all(traces.numpy() <= np.trace(current.numpy()) + 1e-12)  # Data never hurts.
    trace = gp.gradient_covariance_trace(tf.constant(theta), tf.constant(x), hyper)
    assert float(trace) == pytest.approx(np.trace(current.numpy()), rel=1e-10)


def test_the_acquisitions_batched_gradient_is_each_candidates_own(problem):
    """GIBO's L-BFGS-B restarts share one compiled call per round: each row's
    value and gradient must be that candidate's alone (central differences)."""
    from saferl_tf.search.gibo import _information_and_gradient

    x, _, model, theta = problem
    hyper = gp.Hyperparameters.from_gpflow(model)
    chol = gp.cholesky(tf.constant(x), hyper)
    candidates = np.random.default_rng(1).uniform(-0.5, 0.5, (5, 3)) + theta

    def call(points):
        values, gradients = _information_and_gradient(
            tf.constant(points), tf.constant(theta), tf.constant(x), hyper.lengthscales,
            hyper.signal_variance, hyper.noise_variance, chol,
        )  # fmt: skip
        return values.numpy(), gradients.numpy()

    values, gradients = call(candidates)
    for candidate, value, gradient in zip(candidates, values, gradients):
        alone, _ = call(candidate[None])
        assert alone[0] == pytest.approx(value, rel=1e-12)
        step = 1e-6
        numeric = [(call(candidate[None] + step * e)[0][0] - call(candidate[None] - step * e)[0][0])
                   / (2 * step) for e in np.eye(3)]  # fmt: skip
        np.testing.assert_allclose(gradient, numeric, rtol=1e-5, atol=1e-8)
