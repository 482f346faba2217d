"""Gaussian-process gradient posteriors for local policy search (GIBO).

A GP with a squared-exponential ARD kernel

    k(a, b) = s * exp(-0.5 * sum_d (a_d - b_d)^2 / l_d^2),    Lambda = diag(l)

observed with noise variance ``noise`` at X [N, D] with targets y [N] (zero
prior mean) has a Gaussian posterior over its gradient at theta [D]:

    K' = dk(theta, X)/dtheta = -Lambda^-2 (theta - X)^T k(theta, X)     [D, N]
    mean = K' (K + noise I)^-1 y                                          [D]
    cov  = s Lambda^-2 - K' (K + noise I)^-1 K'^T                         [D, D]

The lengthscales enter squared (Lambda^-2). The acquisition first published
with GIBO used them unsquared and was corrected after the paper; the tests
check this form against automatic differentiation of GPflow's posterior.

Adding a (noisy) observation at z changes the covariance by a rank-one term,
so the gradient-information acquisition needs no refactorization:

    v = dk_post(theta, z)/dtheta = K'_z - K' (K + noise I)^-1 k(X, z)     [D]
    r = k(z, z) - k(z, X)(K + noise I)^-1 k(X, z) + noise
    trace(cov | X + z) = trace(cov | X) - |v|^2 / r

All functions take and return float64 tensors and work inside ``tf.function``.
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf


@dataclasses.dataclass
class Hyperparameters:
    lengthscales: tf.Tensor  # [D]
    signal_variance: tf.Tensor  # scalar s
    noise_variance: tf.Tensor  # scalar

    @classmethod
    def from_gpflow(cls, model) -> Hyperparameters:
        """From a gpflow GPR with a SquaredExponential kernel."""
        kernel = model.kernel
        return cls(
            tf.cast(kernel.lengthscales, tf.float64) * tf.ones_like(model.data[0][0]),
            tf.cast(kernel.variance, tf.float64),
            tf.cast(model.likelihood.variance, tf.float64),
        )


def se_kernel(a, b, lengthscales, signal_variance):
    """k(a, b) for a [N, D], b [M, D] -> [N, M]."""
    a, b = a / lengthscales, b / lengthscales
    squared = (
        tf.reduce_sum(a**2, -1)[:, None]
        + tf.reduce_sum(b**2, -1)[None, :]
        - 2.0 * a @ tf.transpose(b)
    )
    return signal_variance * tf.exp(-0.5 * tf.maximum(squared, 0.0))


def kernel_gradient(theta, x, lengthscales, signal_variance):
    """dk(theta, X)/dtheta: theta [D], X [N, D] -> [D, N]."""
    k = se_kernel(theta[None, :], x, lengthscales, signal_variance)[0]  # [N]
    return -tf.transpose(theta[None, :] - x) / lengthscales[:, None] ** 2 * k[None, :]


def cholesky(x, hyper: Hyperparameters):
    """Cholesky factor of K + noise I for inputs x [N, D] -> [N, N]."""
    n = tf.shape(x)[0]
    gram = se_kernel(x, x, hyper.lengthscales, hyper.signal_variance)
    return tf.linalg.cholesky(gram + hyper.noise_variance * tf.eye(n, dtype=x.dtype))


def cholesky_append(chol, cross, self_variance):
    """The factor of [[A, c], [c^T, d]] from the factor L of A, without refactorizing.

    Args:
      chol: L [N, N], lower triangular with L L^T = A.
      cross: c [N], the covariances of the new point with the old ones.
      self_variance: d, the new point's variance (noise included).
    Returns:
      [N + 1, N + 1] lower-triangular factor.
    """
    row = tf.linalg.triangular_solve(chol, cross[:, None], lower=True)[:, 0]  # L^-1 c
    corner = tf.sqrt(tf.maximum(self_variance - tf.reduce_sum(row**2), 1e-12))
    n = tf.shape(chol)[0]
    top = tf.concat([chol, tf.zeros([n, 1], chol.dtype)], axis=1)
    bottom = tf.concat([row[None, :], tf.reshape(corner, [1, 1])], axis=1)
    return tf.concat([top, bottom], axis=0)


def gradient_posterior(theta, x, y, hyper: Hyperparameters, chol=None):
    """Posterior mean [D] and covariance [D, D] of the gradient at theta [D].

    x [N, D], y [N] (zero prior mean: centre y first); ``chol`` may pass a
    precomputed ``cholesky(x, hyper)``.
    """
    if chol is None:
        chol = cholesky(x, hyper)
    k_grad = kernel_gradient(theta, x, hyper.lengthscales, hyper.signal_variance)  # [D, N]
    alpha = tf.linalg.cholesky_solve(chol, y[:, None])[:, 0]  # (K + noise I)^-1 y
    mean = tf.linalg.matvec(k_grad, alpha)
    half = tf.linalg.triangular_solve(chol, tf.transpose(k_grad), lower=True)  # L^-1 K'^T
    prior = tf.linalg.diag(hyper.signal_variance / hyper.lengthscales**2)
    return mean, prior - tf.transpose(half) @ half


def gradient_covariance_trace(theta, x, hyper: Hyperparameters, chol=None):
    """Trace of the gradient's posterior covariance at theta [D] (no targets needed)."""
    if chol is None:
        chol = cholesky(x, hyper)
    k_grad = kernel_gradient(theta, x, hyper.lengthscales, hyper.signal_variance)
    half = tf.linalg.triangular_solve(chol, tf.transpose(k_grad), lower=True)
    return tf.reduce_sum(hyper.signal_variance / hyper.lengthscales**2) - tf.reduce_sum(half**2)


def gradient_information(theta, x, candidates, hyper: Hyperparameters, chol=None):
    """Trace of the gradient covariance at theta once each candidate is observed.

    theta [D], x [N, D], candidates [C, D] -> [C]. Lower is better; the
    acquisition value of a candidate is the trace now minus this.
    """
    if chol is None:
        chol = cholesky(x, hyper)
    length, signal = hyper.lengthscales, hyper.signal_variance
    k_grad = kernel_gradient(theta, x, length, signal)  # [D, N]
    half = tf.linalg.triangular_solve(chol, tf.transpose(k_grad), lower=True)  # [N, D]
    trace = tf.reduce_sum(signal / length**2) - tf.reduce_sum(
        half**2
    )  # As gradient_covariance_trace.
    cross = se_kernel(x, candidates, length, signal)  # [N, C]
    cross_half = tf.linalg.triangular_solve(chol, cross, lower=True)  # [N, C]
    # dk(theta, z)/dtheta for every candidate: [C, D]
    k_theta_z = se_kernel(theta[None, :], candidates, length, signal)[0]  # [C]
    direct = -(theta[None, :] - candidates) / length**2 * k_theta_z[:, None]
    v = direct - tf.transpose(tf.transpose(half) @ cross_half)  # [C, D]
    residual = signal - tf.reduce_sum(cross_half**2, axis=0) + hyper.noise_variance  # [C]
    return trace - tf.reduce_sum(v**2, axis=-1) / residual
