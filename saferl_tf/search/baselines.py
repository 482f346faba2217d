"""Policy-search baselines beside GIBO, with the same ask/tell interface.

- ``ARSSearcher``: augmented random search (Mania et al., 2018). Each iteration
  evaluates theta +- noise * delta_i for ``directions`` (N) Gaussian directions
  and steps along sum_i (r+_i - r-_i) delta_i over the ``top`` (b) best
  directions by max(r+, r-) (``top=None``: all N), divided by b and, with
  ``scale_by_std``, by the standard deviation sigma_R of the 2b rewards used
  (``std_ddof=1``: the unbiased one, as the published GIBO code's torch.std;
  with one direction it is sqrt(2) smaller than ddof 0's).
  Without that scaling this is basic random search; with it, ARS V1 (V1-t for
  b < N). V2 adds observation normalization, which belongs to the objective
  (``EpisodeObjective(normalize=True)``). The defaults (all directions,
  scaled) are V1, or V2 on a normalizing objective.
- ``CMAESSearcher``: the ``cma`` package's CMA-ES (it minimizes; values are
  negated), sampling from its own seeded ``RandomState``, not numpy's global one.
- ``BOSearcher``: vanilla Bayesian optimization with expected improvement
  (Trieste) inside a box, after a Sobol design.

Saved states (``state`` / ``load_state``): ARS and BO save what their next asks
depend on (BO: the data, and the GP hyperparameters its Trieste models were
last fitted to, which the next fit starts from). A ``cma`` strategy can only
be serialized with pickle, so CMA-ES saves the generations it was told and
replays them into a fresh strategy with the same seed: cheap (no objective
calls, well under a millisecond per generation) and exact, and checked point
by point against the saved populations. Replaying everything would suit any
searcher, but for GIBO and BO it would redo every GP fit and acquisition
optimization of the run (seconds per evaluation for BO) and rely on them
giving bit-identical results again, hence explicit state for those.
"""

from __future__ import annotations

import contextlib
import sys

import numpy as np
import tensorflow as tf

from saferl_tf.search.interface import Searcher, checked_array


class ARSSearcher(Searcher):
    def __init__(self, initial, step_size: float = 0.02, noise: float = 0.02,
                 directions: int = 8, top: int | None = None, scale_by_std: bool = True,
                 std_ddof: int = 0, seed: int = 0):  # fmt: skip
        self.theta = np.asarray(initial, np.float64).copy()
        self.step_size, self.noise = step_size, noise
        self.directions = directions
        self.top = min(top or directions, directions)
        self.scale_by_std = scale_by_std
        self.std_ddof = std_ddof
        self.rng = np.random.default_rng(seed)
        self._queue: list[np.ndarray] = []
        self._values: list[float] = []
        self._deltas = np.zeros((0, self.theta.shape[0]))

    def _new_iteration(self) -> None:
        self._deltas = self.rng.normal(size=(self.directions, self.theta.shape[0]))
        self._queue = [self.theta + self.noise * d for d in self._deltas]
        self._queue += [self.theta - self.noise * d for d in self._deltas]
        self._values = []

    def ask(self) -> np.ndarray:
        if not self._queue:
            self._new_iteration()
        return self._queue[len(self._values)].copy()

    def tell(self, parameters, value) -> None:
        self._values.append(float(value))
        if len(self._values) < 2 * self.directions:
            return
        plus = np.asarray(self._values[: self.directions])
        minus = np.asarray(self._values[self.directions :])
        best = np.argsort(-np.maximum(plus, minus))[: self.top]
        used = np.concatenate([plus[best], minus[best]])
        spread = used.std(ddof=self.std_ddof) if len(used) > self.std_ddof else 0.0
        scale = spread if self.scale_by_std and spread > 0 else 1.0
        direction = ((plus[best] - minus[best])[:, None] * self._deltas[best]).sum(0)
        self.theta = self.theta + self.step_size / (self.top * scale) * direction
        self._queue, self._values = [], []

    def state(self) -> dict:
        size = self.theta.shape[0]
        return {"theta": self.theta.copy(), "rng": self.rng.bit_generator.state,
                "queue": np.asarray(self._queue, np.float64).reshape(-1, size),
                "values": np.asarray(self._values, np.float64),
                "deltas": self._deltas.copy()}  # fmt: skip

    def load_state(self, state: dict) -> None:
        size = self.theta.shape[0]
        theta = checked_array(state["theta"], (size,), "theta")
        queue = checked_array(state["queue"], (None, size), "queue")
        values = checked_array(state["values"], (None,), "values")
        deltas = checked_array(state["deltas"], (None, size), "deltas")
        if len(queue) not in (0, 2 * self.directions) or len(values) > len(queue):
            raise ValueError(f"{len(queue)} queued points and {len(values)} values do not fit "
                             f"{self.directions} directions")  # fmt: skip
        self.rng.bit_generator.state = state["rng"]
        self.theta, self._queue, self._values = theta, list(queue), [float(v) for v in values]
        self._deltas = deltas


class CMAESSearcher(Searcher):
    def __init__(self, initial, sigma: float = 0.2, population: int | None = None,
                 bounds=None, seed: int = 0):  # fmt: skip
        import cma

        # cma samples from numpy's global generator unless given ``randn``; a
        # RandomState of its own gives the same draws as the global generator
        # seeded alike (cma's ``seed`` option) without depending on, or
        # reseeding, anything else in the process.
        self._random = np.random.RandomState(seed + 1)  # noqa: NPY002 (cma's randn(lam, N))
        options = {"seed": np.nan, "randn": self._random.randn, "verbose": -9}
        if population:
            options["popsize"] = population
        if bounds is not None:
            options["bounds"] = [list(bounds[0]), list(bounds[1])]
        self.strategy = cma.CMAEvolutionStrategy(np.asarray(initial, np.float64), sigma, options)
        self._population: list[np.ndarray] = []
        self._values: list[float] = []  # Costs (negated values) told for the population.
        self._told_points: list[np.ndarray] = []  # Every finished generation, for the state.
        self._told_costs: list[np.ndarray] = []

    def ask(self) -> np.ndarray:
        if len(self._values) == len(self._population):
            self._population, self._values = self.strategy.ask(), []
        return np.asarray(self._population[len(self._values)], np.float64)

    def tell(self, parameters, value) -> None:
        self._values.append(-float(value))
        if len(self._values) == len(self._population):
            self.strategy.tell(self._population, self._values)
            self._told_points.append(np.asarray(self._population, np.float64))
            self._told_costs.append(np.asarray(self._values, np.float64))

    @property
    def theta(self) -> np.ndarray:
        return np.asarray(self.strategy.mean, np.float64)

    def state(self) -> dict:
        size, popsize = len(self.strategy.mean), self.popsize
        pending = len(self._values) < len(self._population)  # A generation in progress.
        return {
            "told_points": np.asarray(self._told_points, np.float64).reshape(-1, popsize, size),
            "told_costs": np.asarray(self._told_costs, np.float64).reshape(-1, popsize),
            "points": np.asarray(self._population if pending else [], np.float64).reshape(-1, size),
            "costs": np.asarray(self._values if pending else [], np.float64),
        }

    def load_state(self, state: dict) -> None:
        """Replays the saved generations into this fresh strategy (see the module docstring)."""
        if self._told_points or self._population:
            raise ValueError("a CMA-ES state can only be loaded into a fresh searcher")
        size = len(self.strategy.mean)
        told_points = checked_array(state["told_points"], (None, self.popsize, size),
                                    "told_points")  # fmt: skip
        told_costs = checked_array(state["told_costs"], (len(told_points), self.popsize),
                                    "told_costs")  # fmt: skip
        points = checked_array(state["points"], (None, size), "points")
        values = checked_array(state["costs"], (None,), "costs")
        if len(points) not in (0, self.popsize) or len(values) > len(points):
            raise ValueError(f"{len(points)} points and {len(values)} values do not fit a "
                             f"population of {self.popsize}")  # fmt: skip
        for generation, (saved, costs) in enumerate(zip(told_points, told_costs)):
            self._replay_ask(saved, generation)
            self._values = [float(cost) for cost in costs]
            self.strategy.tell(self._population, self._values)
            self._told_points.append(saved)
            self._told_costs.append(costs)
        if len(points):
            self._replay_ask(points, len(told_points))
            self._values = [float(v) for v in values]

    @property
    def popsize(self) -> int:
        return int(self.strategy.popsize)

    def _replay_ask(self, saved: np.ndarray, generation: int) -> None:
        self._population = self.strategy.ask()
        # Same seed, same history: the same points, up to rounding at most.
        if not np.allclose(self._population, saved, rtol=1e-9, atol=1e-12):
            raise ValueError(
                f"replaying generation {generation} gave other points than the saved ones "
                "(another cma version?)"
            )


class BOSearcher(Searcher):
    """Expected improvement (Trieste) on [low, high]^D after ``initial`` Sobol points."""

    def __init__(self, bounds, initial: int | None = None, seed: int = 0):
        from scipy.stats import qmc

        from saferl_tf.bo.proposers import TriestePenalty

        self.low, self.high = (np.asarray(b, np.float64) for b in bounds)
        dimension = self.low.shape[0]
        self.initial = initial or max(2 * dimension, 4)
        # The first ``initial`` points of a power-of-two block: the same points
        # ``random(initial)`` gives, without its warning about the block size.
        exponent = max(int(np.ceil(np.log2(self.initial))), 0)
        sobol = qmc.Sobol(dimension, scramble=True, seed=seed)
        self._design = sobol.random_base2(exponent)[: self.initial]
        # The penalty proposer minimizes the ``penalty`` of its outcomes: here -value.
        self._proposer = TriestePenalty(dimension, seed)
        self._rng = np.random.default_rng(seed)
        self.fallbacks = 0  # Proposals that failed and became uniform random points.
        self._models_built_at: int | None = None  # Data size when Trieste built its GPs.
        self._points: list[np.ndarray] = []
        self._values: list[float] = []

    def iterate(self) -> np.ndarray | None:
        """The best point observed so far (BO keeps no iterate of its own)."""
        if not self._values:
            return None
        return np.asarray(self._points[int(np.argmax(self._values))], np.float64).copy()

    def state(self) -> dict:
        size = len(self.low)
        return {"points": np.asarray(self._points, np.float64).reshape(-1, size),
                "values": np.asarray(self._values, np.float64), "fallbacks": self.fallbacks,
                "rng": self._rng.bit_generator.state, "models_built_at": self._models_built_at,
                "models": _model_parameters(self._proposer)}  # fmt: skip

    def load_state(self, state: dict) -> None:
        size = len(self.low)
        points = checked_array(state["points"], (None, size), "points")
        values = checked_array(state["values"], (len(points),), "values")
        self._points, self._values = list(points), [float(v) for v in values]
        self.fallbacks = int(state["fallbacks"])
        self._rng.bit_generator.state = state["rng"]
        built_at, models = state["models_built_at"], state["models"]
        if built_at is None:
            return
        built_at = int(built_at)
        if not self.initial <= built_at <= len(points) or not models:
            raise ValueError(f"GP models built at {built_at} points do not fit the data")
        # Trieste's GP models start each fit from the hyperparameters of the last
        # one, so a fresh proposer would propose other points. It rebuilds them
        # as they were first built (same data, same seeds), then takes the saved
        # hyperparameters.
        with contextlib.suppress(*_PROPOSAL_ERRORS):
            self._propose(built_at)
        _load_model_parameters(self._proposer, models)
        self._models_built_at = built_at

    def _propose(self, count: int) -> np.ndarray:
        """The proposer's unit point after the first ``count`` evaluations."""
        from saferl_tf.bo.study import Outcome

        outcomes = [Outcome(v, 0.0, 0.0, v, 0.0, 0.0, -v) for v in self._values[:count]]
        had_models = bool(self._proposer._models)
        try:
            return self._proposer.propose(
                np.asarray(self._points[:count]), outcomes, np.zeros((0, len(self.low)))
            )
        finally:
            if not had_models and self._proposer._models:  # Even when it then failed.
                self._models_built_at = count

    def ask(self) -> np.ndarray:
        count = len(self._points)
        if count < self.initial:
            unit = self._design[count]
        else:
            try:
                unit = self._propose(count)
            except _PROPOSAL_ERRORS as error:
                # Points piled up near the optimum can make the GP's Cholesky
                # fail; a uniform point keeps the search going (and the data
                # better conditioned) rather than ending the run.
                self.fallbacks += 1
                message = f"warning: BO proposal failed ({type(error).__name__}); "
                print(message + "evaluating a uniform random point instead", file=sys.stderr)
                unit = self._rng.random(len(self.low))
        return self.low + unit * (self.high - self.low)

    def tell(self, parameters, value) -> None:
        unit = (np.asarray(parameters, np.float64) - self.low) / (self.high - self.low)
        self._points.append(np.clip(unit, 0.0, 1.0))
        self._values.append(float(value))


_PROPOSAL_ERRORS = (tf.errors.InvalidArgumentError, ValueError, np.linalg.LinAlgError)


def _gp_parameters(model) -> dict:
    """{path: gpflow Parameter} of a Trieste model's GP (not its data variables)."""
    from gpflow import Parameter
    from gpflow.utilities import parameter_dict

    return {path: value for path, value in parameter_dict(model.model).items()
            if isinstance(value, Parameter)}  # fmt: skip


def _model_parameters(proposer) -> dict:
    """{tag: {parameter path: unconstrained value}} of a Trieste proposer's GP models."""
    return {tag: {path: parameter.unconstrained_variable.numpy()
                  for path, parameter in _gp_parameters(model).items()}
            for tag, model in proposer._models.items()}  # fmt: skip


def _load_model_parameters(proposer, saved: dict) -> None:
    if set(saved) != set(proposer._models):
        raise ValueError(f"saved GP models {sorted(saved)} are not {sorted(proposer._models)}")
    for tag, model in proposer._models.items():
        parameters = _gp_parameters(model)
        if set(saved[tag]) != set(parameters):
            raise ValueError(f"the saved {tag} GP has other parameters than this one")
        for path, parameter in parameters.items():
            variable = parameter.unconstrained_variable
            value = np.asarray(saved[tag][path], variable.dtype.as_numpy_dtype)
            if value.shape != tuple(variable.shape):
                raise ValueError(f"{tag} GP parameter {path} has shape {value.shape}")
            variable.assign(value)
