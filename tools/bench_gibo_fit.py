"""GIBO's hyperparameter fit against GPflow's, side by side on the same data.

The same model both ways: a squared-exponential ARD kernel with the
lengthscales in their uniform prior's box (a sigmoid), the outputscale under a
Normal(2, 1) prior on the softplus-constrained value with its Jacobian (as
GPflow counts priors), the noise fixed at 0.01 and a fitted constant mean, on
raw values: GIBO's defaults (``saferl_tf/search/gibo.py``). GPflow's is a
``gpflow.models.GPR`` fitted by ``gpflow.optimizers.Scipy().minimize(...,
compile=True)``, built once and given each new data window by assignment (the
window has a fixed size, N_max = 5 D, so nothing retraces), as GIBO would
use it. Both start every fit from the same values and run L-BFGS-B with at
most 100 iterations. Data: windows of a synthetic function's noisy values
around a moving point. Reports the mean seconds per fit after the first (the
first includes tracing; shown apart) and the final losses. Usage::

    .venv/bin/python tools/bench_gibo_fit.py [--dimensions=4,8,16] [--fits=20]
"""

from __future__ import annotations

import os
import time
import types

from absl import app, flags

flags.DEFINE_list("dimensions", ["4", "8", "16"], "Dimensions D (windows of 5 D points).")
flags.DEFINE_integer("fits", 20, "Fits per dimension (the first is reported apart).")
FLAGS = flags.FLAGS


def _windows(dimension: int, count: int):
    import numpy as np

    from saferl_tf.search.objectives import gp_sample_function

    function = gp_sample_function(dimension, 0)
    rng = np.random.default_rng(0)
    centre = np.full(dimension, 0.5)
    for _ in range(count):
        x = np.clip(centre + rng.uniform(-0.2, 0.2, (5 * dimension, dimension)), 0, 1)
        yield x, function(x) + rng.normal(0, 0.1, len(x))
        centre = np.clip(centre + rng.normal(0, 0.05, dimension), 0.1, 0.9)


def _ours(dimension: int, windows) -> tuple[float, list[float], list[float]]:
    import numpy as np

    from saferl_tf.search.gibo import GIBOConfig, GIBOSearcher

    times, losses = [], []
    for x, y in windows:
        searcher = GIBOSearcher(np.full(dimension, 0.5), GIBOConfig(max_data=0))
        searcher.x, searcher.y = x, y
        started = time.perf_counter()
        searcher._fit()
        times.append(time.perf_counter() - started)
        losses.append(_loss(searcher, x, y))
    return times[0], times[1:], losses


def _loss(searcher, x, y) -> float:
    """The negative log marginal likelihood at the fitted values (both ways alike)."""
    import numpy as np

    squared = (((x[:, None, :] - x[None, :, :]) / searcher.lengthscales) ** 2).sum(-1)
    covariance = searcher.outputscale * np.exp(-0.5 * squared) + searcher.noise * np.eye(len(x))
    centred = y - searcher.mean
    chol = np.linalg.cholesky(covariance)
    alpha = np.linalg.solve(covariance, centred)
    log_determinant = 2.0 * np.log(np.diag(chol)).sum()
    return float(0.5 * (centred @ alpha + log_determinant + len(x) * np.log(2 * np.pi)))


def _gpflow(dimension: int, windows) -> tuple[float, list[float], list[float]]:
    import gpflow
    import numpy as np
    import tensorflow as tf
    import tensorflow_probability as tfp

    config_low, config_high = 0.01, 0.3
    model = None
    times, losses = [], []
    for x, y in windows:
        if model is None:
            data = (tf.Variable(x, trainable=False), tf.Variable(y[:, None], trainable=False))
            kernel = gpflow.kernels.SquaredExponential()
            kernel.lengthscales = gpflow.Parameter(
                np.full(dimension, 0.155), transform=tfp.bijectors.Sigmoid(
                    tf.constant(config_low, tf.float64), tf.constant(config_high, tf.float64)
                ),
            )  # fmt: skip
            kernel.variance = gpflow.Parameter(
                2.0, transform=gpflow.utilities.positive(),
                prior=tfp.distributions.Normal(tf.constant(2.0, tf.float64),
                                               tf.constant(1.0, tf.float64)),
            )  # fmt: skip
            model = gpflow.models.GPR(data, kernel, gpflow.mean_functions.Constant(),
                                      noise_variance=0.01)  # fmt: skip
            gpflow.set_trainable(model.likelihood.variance, False)
            optimizer = gpflow.optimizers.Scipy()
        else:
            model.data[0].assign(x)
            model.data[1].assign(y[:, None])
        model.kernel.lengthscales.assign(np.full(dimension, 0.155))
        model.kernel.variance.assign(2.0)
        model.mean_function.c.assign([0.0])
        started = time.perf_counter()
        optimizer.minimize(model.training_loss, model.trainable_variables, compile=True,
                           options={"maxiter": 100})  # fmt: skip
        times.append(time.perf_counter() - started)
        fitted = types.SimpleNamespace(
            lengthscales=model.kernel.lengthscales.numpy(),
            outputscale=float(model.kernel.variance.numpy()),
            noise=float(model.likelihood.variance.numpy()),
            mean=float(model.mean_function.c.numpy()[0]),
        )
        losses.append(_loss(fitted, x, y))
    return times[0], times[1:], losses


def main(argv):
    del argv
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import numpy as np
    from threadpoolctl import threadpool_limits

    rows = []
    with threadpool_limits(1, user_api="blas"):
        for dimension in (int(d) for d in FLAGS.dimensions):
            windows = list(_windows(dimension, FLAGS.fits))
            ours = _ours(dimension, windows)
            theirs = _gpflow(dimension, windows)
            rows.append((dimension, ours, theirs))
    print("\nSeconds per GIBO hyperparameter fit (5 D points, mean after the first; the first):\n")
    print("| D | GIBO's fit | GPflow Scipy(compile=True) | GPflow / GIBO | loss: GIBO, GPflow |")
    print("| ---: | ---: | ---: | ---: | --- |")
    for dimension, (first, times, losses), (g_first, g_times, g_losses) in rows:
        mean, g_mean = float(np.mean(times)), float(np.mean(g_times))
        print(
            f"| {dimension} | {mean:.4f} ({first:.2f}) | {g_mean:.4f} ({g_first:.2f}) | "
            f"{g_mean / mean:.2f} | {np.mean(losses):.3f}, {np.mean(g_losses):.3f} |"
        )


if __name__ == "__main__":
    app.run(main)
