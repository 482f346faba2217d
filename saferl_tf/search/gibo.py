"""GIBO: local policy search with a GP gradient posterior (Mueller et al., 2021).

Each iteration evaluates the current parameters theta, fits the GP
hyperparameters once the data window is full (or keeps them), then queries up
to M points z in the box theta +- delta that most reduce the trace of the
gradient's posterior covariance at theta (``gp.gradient_information``;
``epsilon`` stops the round after the first query whose reduction falls below
it, as published, but the default makes every query, as the paper's figures
do), takes the gradient's posterior mean g and steps
theta <- theta + learning_rate * lengthscales * g / |g|. Only the ``max_data``
newest points are kept (0 keeps all: the published guard for this limit never
switched off). By default the GP sees the raw values with a fixed noise and a
fitted constant mean, as the published code; its hyperparameters are fitted by
maximum a posteriori with GPflow (``_model``). ``GIBOConfig`` lists the
choices; ``saferl_tf/search/presets.py`` the published experiments' settings.

``state()`` holds everything the next asks depend on (the iterate, the data,
the hyperparameters, where the query round stands and the numpy generator's
state; GIBO draws nothing from TensorFlow's random ops), so a searcher that
``load_state``s it continues exactly.
"""

from __future__ import annotations

import dataclasses
import sys

import numpy as np
import tensorflow as tf

from saferl_tf.bo.batched_lbfgsb import minimize_batched
from saferl_tf.errors import ConfigError
from saferl_tf.search import gradient_gp as gp
from saferl_tf.search.interface import Searcher, checked_array
from saferl_tf.search.objectives import synthetic_lengthscale

FIT_WHEN = ("after_queries", "window_full")
LENGTHSCALE_PRIORS = ("auto", "bounds", "paper_synthetic")
OUTPUTSCALE_PRIORS = ("auto", "normal", "uniform")


@dataclasses.dataclass
class GIBOConfig:
    """The defaults are the published code's fitting (sarmueller/gibo): a fixed
    noise, raw values with a fitted constant mean, a fit only once the data
    window is full, every query made (no epsilon, as in the paper's figures)."""

    learning_rate: float = 0.25
    delta: float = 0.2
    max_queries: int | None = None  # M; None: the dimension D.
    max_data: int | None = None  # N_max; None: 5 D; 0: keep every point.
    epsilon: float | None = None  # Stop querying when the trace would fall by less; None: never.
    fit_hyperparameters: bool = True
    # When the hyperparameters are fitted: "window_full", as the published
    # code, once per iteration after theta is evaluated and before its
    # queries, and only when the data window holds max_data points (until then
    # the initial values stay); "after_queries", after each round of queries
    # once there are more than D points (this package's earlier default).
    fit_when: str = "window_full"
    lengthscale: float | None = None  # Initial (or fixed); None: the prior's midpoint.
    lengthscale_bounds: tuple[float, float] = (0.01, 0.3)  # Uniform prior's support.
    # "bounds": the two settings above (the published RL experiments' prior;
    # the defaults are its Swimmer bounds, the Hopper preset has 0.01-0.5);
    # "paper_synthetic": the published synthetic experiment's, uniform on 0.7
    # to 1.3 times the GP-sample functions' lengthscale for D, from it (it
    # knows the range the test functions' lengthscales were drawn from);
    # "auto": "paper_synthetic" on the synthetic functions, "bounds" otherwise.
    lengthscale_prior: str = "auto"
    # The outputscale's prior: "normal", Normal(mean, std) of the value (the
    # published RL experiments', (2, 1)); "uniform" on (low, high) (the
    # published synthetic experiment's, (0.1, 5)); "auto": "uniform" on the
    # synthetic functions, "normal" otherwise. outputscale_prior None: those
    # published values; outputscale (initial, or fixed) None: the prior's
    # mean or midpoint (2 or 2.55).
    outputscale_prior_kind: str = "auto"
    outputscale_prior: tuple[float, float] | None = None
    outputscale: float | None = None
    # False (published): the GP sees the raw values, with a constant mean
    # fitted with the hyperparameters, and the gradient comes from the raw
    # values (zero prior mean); the values should then be on the scale the
    # priors and the noise assume (the published RL runs scale the reward:
    # --reward_scale). True: values standardized over the window.
    standardize: bool = False
    noise_variance: float | None = 0.01  # Fixed; None: learned (from 0.01, at least 1e-4).
    normalize_gradient: bool = True
    candidates: int = 1024  # Random candidates for the acquisition, then refined.
    restarts: int = 1  # The best candidates refined with L-BFGS-B.


class GIBOSearcher(Searcher):
    """GIBO with ask/tell (see the module docstring).

    Args:
      initial: theta_0 [D].
      bounds: (low [D], high [D]) the parameters stay within, or None.
      coordinates: for parameters whose meaning changes during the search (a
        linear policy on observations standardized with running statistics),
        an object with ``to_raw(x [N, D]) -> [N, D]`` (the points as last
        evaluated, in fixed coordinates) and ``from_raw`` (back, as of now),
        e.g. ``EpisodeObjective``. The data are then kept in raw coordinates
        and re-expressed before each use, as the published code does.
    """

    def __init__(self, initial, config: GIBOConfig | None = None, bounds=None, seed: int = 0,
                 coordinates=None, synthetic: bool = False):  # fmt: skip
        self.config = config or GIBOConfig()
        for name, accepted in (("fit_when", FIT_WHEN), ("lengthscale_prior", LENGTHSCALE_PRIORS),
                               ("outputscale_prior_kind", OUTPUTSCALE_PRIORS)):  # fmt: skip
            if getattr(self.config, name) not in accepted:
                raise ConfigError(f"unknown {name} {getattr(self.config, name)!r}; "
                                  f"accepted: {', '.join(accepted)}")  # fmt: skip
        self.theta = np.asarray(initial, np.float64).copy()
        self.dimension = self.theta.shape[0]
        self.bounds = None if bounds is None else tuple(np.asarray(b, np.float64) for b in bounds)
        self.max_queries = self.config.max_queries or self.dimension
        max_data = self.config.max_data
        self.max_data = 5 * self.dimension if max_data is None else max_data
        self.rng = np.random.default_rng(seed)
        self.x = np.zeros((0, self.dimension))
        self.y = np.zeros(0)
        self.coordinates = coordinates
        self.raw_x = np.zeros((0, self.dimension))  # With ``coordinates`` only.
        self.lengthscale_bounds = tuple(self.config.lengthscale_bounds)
        low, high = self.lengthscale_bounds
        if not 0 < low < high:
            raise ConfigError(f"lengthscale_bounds must be 0 < low < high, got {low}, {high}")
        initial_lengthscale = self.config.lengthscale or 0.5 * (low + high)
        prior = self.config.lengthscale_prior
        if prior == "auto":
            prior = "paper_synthetic" if synthetic else "bounds"
        self.prior = prior
        if self.prior == "paper_synthetic":
            scale = synthetic_lengthscale(self.dimension)
            self.lengthscale_bounds = (0.7 * scale, 1.3 * scale)
            initial_lengthscale = self.config.lengthscale or scale
        self._warned_scale = False
        self._gpr = None  # GPflow's model for the fit, built at the first.
        self._optimizer = None
        self._bounds = None  # L-BFGS-B bounds of the fit (set with the model).
        self.lengthscales = np.full(self.dimension, initial_lengthscale)
        kind = self.config.outputscale_prior_kind
        if kind == "auto":
            kind = "uniform" if synthetic else "normal"
        self.outputscale_prior_kind = kind
        published = (0.1, 5.0) if kind == "uniform" else (2.0, 1.0)
        self.outputscale_prior = tuple(self.config.outputscale_prior or published)
        if kind == "uniform" and not 0 < self.outputscale_prior[0] < self.outputscale_prior[1]:
            raise ConfigError(f"a uniform outputscale_prior must be 0 < low < high, got "
                              f"{self.outputscale_prior}")  # fmt: skip
        default = (
            0.5 * sum(self.outputscale_prior) if kind == "uniform" else self.outputscale_prior[0]
        )
        self.outputscale = self.config.outputscale or default
        self.mean = 0.0  # The constant mean (raw values only).
        self.noise = self.config.noise_variance or 0.01
        self._queries_left = 0  # 0: the next ask is the centre theta.
        self._next_point: np.ndarray | None = None
        self._last_query = False  # The next point is the round's last (epsilon).
        self.steps = 0

    # --- ask / tell ------------------------------------------------------------

    def ask(self) -> np.ndarray:
        if self._queries_left == 0:
            return self.theta.copy()
        return self._next_point.copy()

    def tell(self, parameters, value) -> None:
        point = np.asarray(parameters, np.float64)[None, :]
        self.x = np.vstack([self.x, point])
        self.y = np.append(self.y, float(value))
        if self.coordinates is not None:
            self.raw_x = np.vstack([self.raw_x, self.coordinates.to_raw(point)])
        if self.max_data and len(self.y) > self.max_data:
            self.x, self.y = self.x[-self.max_data :], self.y[-self.max_data :]
            self.raw_x = self.raw_x[-self.max_data :]
        if self.coordinates is not None:
            self.x = self.coordinates.from_raw(self.raw_x)
        if self._queries_left == 0:  # The centre was evaluated: start querying.
            self._queries_left = self.max_queries
            if self._fit_due("window_full"):
                self._fit()
        else:
            self._queries_left -= 1
            if self._last_query:
                self._queries_left = 0
        if self._queries_left > 0:
            self._next_point = self._best_query()
        if self._queries_left == 0:
            self._step()

    # --- state (see ``Searcher.state``) ---------------------------------------------

    def state(self) -> dict:
        next_point = None if self._next_point is None else self._next_point.copy()
        return {"theta": self.theta.copy(), "x": self.x.copy(), "y": self.y.copy(),
                "lengthscales": self.lengthscales.copy(), "outputscale": float(self.outputscale),
                "noise": float(self.noise), "mean": float(self.mean),
                "queries_left": self._queries_left,
                "next_point": next_point, "steps": self.steps,
                "last_query": self._last_query, "raw_x": self.raw_x.copy(),
                "rng": self.rng.bit_generator.state}  # fmt: skip

    def load_state(self, state: dict) -> None:
        d = self.dimension
        self.theta = checked_array(state["theta"], (d,), "theta")
        self.x = checked_array(state["x"], (None, d), "x")
        self.y = checked_array(state["y"], (len(self.x),), "y")
        self.lengthscales = checked_array(state["lengthscales"], (d,), "lengthscales")
        self.outputscale, self.noise = float(state["outputscale"]), float(state["noise"])
        self.mean = float(state.get("mean", 0.0))  # States saved before it: 0.
        self._queries_left, self.steps = int(state["queries_left"]), int(state["steps"])
        self._last_query = bool(state.get("last_query", False))  # Absent in older states.
        raw_x = state.get("raw_x", np.zeros((0, d)))
        self.raw_x = checked_array(raw_x, (None, d), "raw_x")
        if self.coordinates is not None and len(self.raw_x) != len(self.x):
            raise ValueError(f"{len(self.raw_x)} raw points for {len(self.x)} points")
        next_point = state["next_point"]
        self._next_point = (
            None if next_point is None else checked_array(next_point, (d,), "next_point")
        )
        if self._queries_left > 0 and self._next_point is None:
            raise ValueError("queries are left but no next point was saved")
        self.rng.bit_generator.state = state["rng"]

    # --- internals ---------------------------------------------------------------

    def _hyper(self) -> gp.Hyperparameters:
        return gp.Hyperparameters(
            tf.constant(self.lengthscales), tf.constant(self.outputscale, tf.float64),
            tf.constant(self.noise, tf.float64),
        )  # fmt: skip

    def _box(self):
        low, high = self.theta - self.config.delta, self.theta + self.config.delta
        if self.bounds is not None:
            low, high = np.maximum(low, self.bounds[0]), np.minimum(high, self.bounds[1])
        return low, high

    def _best_query(self) -> np.ndarray:
        """The box point that most reduces the gradient's covariance trace."""
        hyper = self._hyper()
        theta, x = tf.constant(self.theta), tf.constant(self.x)
        chol = gp.cholesky(x, hyper)
        trace_now = float(gp.gradient_covariance_trace(theta, x, hyper, chol))
        low, high = self._box()
        candidates = self.rng.uniform(low, high, (self.config.candidates, self.dimension))
        traces = gp.gradient_information(theta, x, tf.constant(candidates), hyper, chol).numpy()
        starts = candidates[np.argsort(traces)[: self.config.restarts]]
        best, best_trace = starts[0], float(traces.min())

        def losses_and_gradients(points):
            values, gradients = _information_and_gradient(
                tf.constant(points), theta, x, hyper.lengthscales, hyper.signal_variance,
                hyper.noise_variance, chol,
            )  # fmt: skip
            return values.numpy(), gradients.numpy()

        # The restarts run apart, as published, but evaluated together: one
        # compiled call per round instead of one per restart (the time is per
        # call, not per point).
        results = minimize_batched(losses_and_gradients, starts, list(zip(low, high)),
                                   max_iterations=20)  # fmt: skip
        for result in results:
            if np.isfinite(result.fun) and result.fun < best_trace:
                best, best_trace = result.x, float(result.fun)
        # As published: the reduction is an absolute amount (a relative one, a
        # fraction of the trace, stopped every query for D >= 10, where one
        # point removes about 1/D of it), the round's first query is always
        # made, and the query that falls short is still evaluated, as the last.
        first = self._queries_left == self.max_queries
        epsilon = self.config.epsilon
        self._last_query = not first and epsilon is not None and trace_now - best_trace < epsilon
        return np.clip(best, low, high)

    def _targets(self) -> np.ndarray:
        if not self.config.standardize:
            return self.y
        # The GP (and the outputscale prior) sees standardized values: raw
        # returns may be on any scale, and a tiny spread drove the fitted
        # outputscale to zero and the lengthscales to their lower bound.
        std = self.y.std()
        return (self.y - self.y.mean()) / (std if std > 0 else 1.0)

    def _fit(self) -> None:
        """Maximum a posteriori hyperparameters by L-BFGS-B (at most 100
        iterations), from the current values (see ``_model``)."""
        config = self.config
        low, high = self.lengthscale_bounds
        y = self._targets()
        spread = float(np.std(y))
        expected = np.sqrt(max(self.outputscale, 1e-12))
        if not config.standardize and not self._warned_scale and spread > 10 * expected:
            self._warned_scale = True
            print(f"warning: GIBO fits raw values that spread {spread:.3g} while its outputscale "
                  f"expects about {expected:.3g}; scale the "
                  "values (saferl-search --reward_scale) or set standardize=true",
                  file=sys.stderr)  # fmt: skip
        model = self._model()
        model.data[0].assign(self.x)
        model.data[1].assign(y[:, None])
        # Every fit starts from the searcher's values (a loaded state's too).
        kernel = model.kernel
        kernel.lengthscales.assign(np.clip(self.lengthscales, low, high))
        if self.outputscale_prior_kind == "uniform":
            kernel.variance.assign(np.clip(self.outputscale, *self.outputscale_prior))
        else:
            kernel.variance.assign(max(self.outputscale, 1e-6))
        model.likelihood.variance.assign(max(self.noise, 1.1e-4))
        if not config.standardize:
            model.mean_function.c.assign([self.mean])
        try:
            self._optimizer.minimize(model.training_loss, model.trainable_variables,
                                     compile=True, options={"maxiter": 100},
                                     bounds=self._bounds)  # fmt: skip
        except (ValueError, tf.errors.InvalidArgumentError):
            return  # A failed fit keeps the previous hyperparameters.
        lengthscales = kernel.lengthscales.numpy()
        outputscale = float(kernel.variance.numpy())
        noise = float(model.likelihood.variance.numpy())
        mean = float(model.mean_function.c.numpy()[0]) if not config.standardize else 0.0
        if not np.all(np.isfinite([*lengthscales, outputscale, noise, mean])):
            return
        self.lengthscales, self.outputscale, self.mean = lengthscales, outputscale, mean
        self.noise = noise if config.noise_variance is None else config.noise_variance

    def _model(self):
        """GPflow's GPR for the fit, built once: lengthscales in their uniform
        prior's box, as L-BFGS-B's bounds on the values themselves (flat
        inside, as the published code's uniform prior; a sigmoid transform
        instead froze a lengthscale that reached a bound, its gradient
        vanishing there), the outputscale under its prior (a Normal density of
        the value itself, without a Jacobian, as GPflow and the published
        code's gpytorch count a prior on a constrained value; or a box), the
        noise fixed or learned above 1e-4, a constant mean on raw values. The data live in
        variables of any length, so the compiled loss is traced once. GPflow's
        ``Scipy(compile=True)`` fit took 0.73-0.99x the time of the hand-written
        compiled loss it replaces (docs/BENCHMARKS.md)."""
        if self._gpr is not None:
            return self._gpr
        import gpflow
        import tensorflow_probability as tfp

        config = self.config
        kernel = gpflow.kernels.SquaredExponential()
        # Identity transforms: the boxes are the optimizer's bounds (below).
        kernel.lengthscales = gpflow.Parameter(self.lengthscales, transform=None)
        first, second = (tf.constant(value, tf.float64) for value in self.outputscale_prior)
        boxed = [(kernel.lengthscales, tuple(self.lengthscale_bounds))]
        if self.outputscale_prior_kind == "uniform":
            kernel.variance = gpflow.Parameter(self.outputscale, transform=None)
            boxed.append((kernel.variance, tuple(self.outputscale_prior)))
        else:
            kernel.variance = gpflow.Parameter(
                max(self.outputscale, 1e-6), transform=gpflow.utilities.positive(),
                prior=tfp.distributions.Normal(first, second),
            )  # fmt: skip
        size = self.dimension
        data = (
            tf.Variable(np.zeros((0, size)), shape=(None, size), trainable=False),
            tf.Variable(np.zeros((0, 1)), shape=(None, 1), trainable=False),
        )
        mean_function = None if config.standardize else gpflow.mean_functions.Constant()
        likelihood = gpflow.likelihoods.Gaussian(max(self.noise, 1.1e-4), variance_lower_bound=1e-4)
        model = gpflow.models.GPR(data, kernel, mean_function, likelihood=likelihood)
        if config.noise_variance is not None:
            gpflow.set_trainable(model.likelihood.variance, False)
        self._gpr, self._optimizer = model, gpflow.optimizers.Scipy()
        # L-BFGS-B's bounds, one per entry of the flattened trainable variables.
        box_of = {id(parameter.unconstrained_variable): box for parameter, box in boxed}
        self._bounds = [box_of.get(id(v), (None, None)) for v in model.trainable_variables
                        for _ in range(int(np.prod(v.shape)))]  # fmt: skip
        return model

    def _fit_due(self, moment: str) -> bool:
        config = self.config
        if not config.fit_hyperparameters or config.fit_when != moment:
            return False
        if moment == "window_full":
            return len(self.y) >= (self.max_data or len(self.y) + 1)
        return len(self.y) > self.dimension

    def _step(self) -> None:
        if self._fit_due("after_queries"):
            self._fit()
        hyper = self._hyper()
        # On raw values (the default) the gradient takes them as they are, with
        # prior mean 0 and the fitted constant ignored, as published.
        y = self._targets()
        mean, _ = gp.gradient_posterior(tf.constant(self.theta), tf.constant(self.x),
                                        tf.constant(y), hyper)  # fmt: skip
        gradient = mean.numpy()
        if self.config.normalize_gradient:
            norm = np.linalg.norm(gradient)
            gradient = gradient / norm if norm > 0 else gradient
        self.theta = self.theta + self.config.learning_rate * self.lengthscales * gradient
        if self.bounds is not None:
            self.theta = np.clip(self.theta, *self.bounds)
        self.steps += 1


@tf.function(reduce_retracing=True)
def _information_and_gradient(z, theta, x, lengthscales, signal_variance, noise_variance, chol):
    """The covariance trace once each row of z [B, D] is observed [B], and its
    gradient in that row [B, D] (the rows are independent, so the sum's
    gradient is theirs side by side; the acquisition's inner loop, compiled:
    eager, it took 97% of GIBO's time)."""
    hyper = gp.Hyperparameters(lengthscales, signal_variance, noise_variance)
    with tf.GradientTape() as tape:
        tape.watch(z)
        values = gp.gradient_information(theta, x, z, hyper, chol)
    return values, tape.gradient(values, z)
