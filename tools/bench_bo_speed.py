"""Vanilla BO's searcher time per evaluation: this package's ``BOSearcher``
(Trieste) against BoTorch configured as the published GIBO code's vanilla BO,
side by side on the same synthetic functions and machine.

BoTorch needs PyTorch, which the package does not install: pass a Python that
has ``botorch`` (``--botorch_python``); the script runs itself under it for the
BoTorch rows. The published configuration (sarmueller/gibo, ``src/optimizers.py``
``BayesianOptimization``, ``configs/synthetic_experiment/*/vbo*.yaml``): an
exact GP with a constant mean and a scaled ARD RBF kernel on raw values,
starting from the single point 0.5 * 1; hyperparameters fitted by L-BFGS-B
(``fit_gpytorch_mll``, warm-started) at every step once there are more than 20
points; analytic expected improvement over the best observed value, maximized
by ``optimize_acqf(q=1, num_restarts=5, raw_samples=64)`` on the unit cube.
Not a bit-for-bit copy: it runs on the installed BoTorch (the published code
pinned 0.3.1) with ``SingleTaskGP``'s own likelihood (noise learned under its
default prior), where the published runs froze the noise and set their priors.
Timed: everything but the objective. Usage::

    .venv/bin/python tools/bench_bo_speed.py --botorch_python=/path/to/torch/venv/bin/python \
        [--dimensions=4,8,16] [--budget=300] [--function=0]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from absl import app, flags

flags.DEFINE_list("dimensions", ["4", "8", "16"], "Dimensions D of the synthetic functions.")
flags.DEFINE_integer("budget", 300, "Evaluations per run.")
flags.DEFINE_integer("function", 0, "Index of the synthetic function per dimension.")
flags.DEFINE_string("functions_dir", "results/synthetic_functions", "Generated functions.")
flags.DEFINE_string("botorch_python", None, "A Python with botorch installed (None: skip).")
flags.DEFINE_enum("backend", "saferl", ["saferl", "botorch"], "Internal: which rows to run.")
FLAGS = flags.FLAGS


def _function_path(dimension: int) -> Path:
    return Path(FLAGS.functions_dir) / f"D{dimension}-{FLAGS.function}.npz"


def _numpy_function(dimension: int):
    """The saved function as plain NumPy (BoTorch's Python need not have TensorFlow)."""
    import numpy as np

    data = np.load(_function_path(dimension))
    support, alpha, lengthscale = data["support"], data["alpha"], float(data["lengthscale"])

    def function(x):
        squared = ((np.atleast_2d(x)[:, None, :] - support[None]) ** 2).sum(-1)
        return np.exp(-0.5 * squared / lengthscale**2) @ alpha

    return function


def _run_saferl(dimension: int) -> float:
    import numpy as np
    from threadpoolctl import threadpool_limits

    from saferl_tf.search.baselines import BOSearcher

    function = _numpy_function(dimension)
    rng = np.random.default_rng(0)
    searcher = BOSearcher((np.zeros(dimension), np.ones(dimension)), seed=0)
    seconds = 0.0
    with threadpool_limits(1, user_api="blas"):  # As saferl-search runs it.
        for _ in range(FLAGS.budget):
            started = time.perf_counter()
            point = searcher.ask()
            asked = time.perf_counter()
            value = float(function(point)[0]) + 0.1 * rng.normal()
            told = time.perf_counter()
            searcher.tell(point, value)
            seconds += (asked - started) + (time.perf_counter() - told)
    return seconds / FLAGS.budget


def _run_botorch(dimension: int) -> float:
    import numpy as np
    import torch
    from botorch.acquisition import ExpectedImprovement
    from botorch.exceptions.errors import ModelFittingError
    from botorch.fit import fit_gpytorch_mll
    from botorch.models import SingleTaskGP
    from botorch.optim import optimize_acqf
    from gpytorch.kernels import RBFKernel, ScaleKernel
    from gpytorch.mlls import ExactMarginalLogLikelihood

    torch.set_num_threads(1)
    torch.manual_seed(0)
    function = _numpy_function(dimension)
    rng = np.random.default_rng(0)
    bounds = torch.stack([torch.zeros(dimension), torch.ones(dimension)]).double()
    x = torch.full((1, dimension), 0.5, dtype=torch.float64)
    y = torch.tensor([[float(function(x.numpy())[0]) + 0.1 * rng.normal()]], dtype=torch.float64)
    state = None
    seconds = 0.0
    for _ in range(FLAGS.budget - 1):
        started = time.perf_counter()
        kernel = ScaleKernel(RBFKernel(ard_num_dims=dimension))
        model = SingleTaskGP(x, y, covar_module=kernel, outcome_transform=None)
        if state is not None:
            model.load_state_dict(state)  # Warm start, as the published loop keeps its model.
        if len(x) > 20:
            try:
                fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model))
            except ModelFittingError:  # Botorch 0.3 warned and went on; so does this.
                model.load_state_dict(state)
        state = model.state_dict()
        acquisition = ExpectedImprovement(model, best_f=y.max())
        candidate, _ = optimize_acqf(acquisition, bounds=bounds, q=1, num_restarts=5,
                                     raw_samples=64)  # fmt: skip
        asked = time.perf_counter()
        value = float(function(candidate.numpy())[0]) + 0.1 * rng.normal()
        told = time.perf_counter()
        x = torch.cat([x, candidate])
        y = torch.cat([y, torch.tensor([[value]], dtype=torch.float64)])
        seconds += (asked - started) + (time.perf_counter() - told)
    return seconds / FLAGS.budget


def main(argv):
    del argv
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    dimensions = [int(d) for d in FLAGS.dimensions]
    if FLAGS.backend == "botorch":
        import warnings

        warnings.filterwarnings("ignore")
        print(json.dumps({d: _run_botorch(d) for d in dimensions}))
        return
    from saferl_tf.search.objectives import cached_gp_sample_function

    for dimension in dimensions:
        cached_gp_sample_function(dimension, FLAGS.function, FLAGS.functions_dir)
    ours = {}
    for dimension in dimensions:
        ours[dimension] = _run_saferl(dimension)
        print(f"saferl_tf BO D={dimension}: {ours[dimension]:.3f} s per evaluation", flush=True)
    theirs = {}
    if FLAGS.botorch_python:
        command = [
            FLAGS.botorch_python, __file__, "--backend=botorch",
            f"--dimensions={','.join(map(str, dimensions))}", f"--budget={FLAGS.budget}",
            f"--function={FLAGS.function}", f"--functions_dir={FLAGS.functions_dir}",
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        theirs = {int(k): v for k, v in json.loads(done.stdout.strip().splitlines()[-1]).items()}
    print(f"\nSearcher seconds per evaluation, {FLAGS.budget} evaluations, function "
          f"{FLAGS.function}:\n")  # fmt: skip
    print("| D | saferl_tf (Trieste) | BoTorch (the published loop) | ratio |")
    print("| ---: | ---: | ---: | ---: |")
    for dimension in dimensions:
        other = theirs.get(dimension)
        cells = (f"{other:.3f}", f"{ours[dimension] / other:.2f}") if other else ("-", "-")
        print(f"| {dimension} | {ours[dimension]:.3f} | {cells[0]} | {cells[1]} |")
    sys.stdout.flush()


if __name__ == "__main__":
    app.run(main)
