"""Policy-search baselines beside GIBO, with the same ask/tell interface.

- ``ARSSearcher``: augmented random search (Mania et al., 2018). Each iteration
  evaluates theta +- noise * delta_i for ``directions`` Gaussian directions and
  steps along sum_i (r+_i - r-_i) delta_i over the ``top`` best directions
  (by max(r+, r-)); v1 divides by the number of directions used, v2-t also by
  the standard deviation of the rewards used (``scale_by_std``).
- ``CMAESSearcher``: the ``cma`` package's CMA-ES (it minimizes; values are negated).
- ``BOSearcher``: vanilla Bayesian optimization with expected improvement
  (Trieste) inside a box, after a Sobol design.
"""

from __future__ import annotations

import sys

import numpy as np
import tensorflow as tf

from saferl_tf.search.interface import Searcher


class ARSSearcher(Searcher):
    def __init__(self, initial, step_size: float = 0.02, noise: float = 0.02,
                 directions: int = 8, top: int | None = None, scale_by_std: bool = True,
                 seed: int = 0):  # fmt: skip
        self.theta = np.asarray(initial, np.float64).copy()
        self.step_size, self.noise = step_size, noise
        self.directions = directions
        self.top = min(top or directions, directions)
        self.scale_by_std = scale_by_std
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
        if not self._queue or len(self._values) == 2 * self.directions:
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
        scale = used.std() if self.scale_by_std and used.std() > 0 else 1.0
        direction = ((plus[best] - minus[best])[:, None] * self._deltas[best]).sum(0)
        self.theta = self.theta + self.step_size / (self.top * scale) * direction
        self._queue = []


class CMAESSearcher(Searcher):
    def __init__(self, initial, sigma: float = 0.2, population: int | None = None,
                 bounds=None, seed: int = 0):  # fmt: skip
        import cma

        options = {"seed": seed + 1, "verbose": -9}
        if population:
            options["popsize"] = population
        if bounds is not None:
            options["bounds"] = [list(bounds[0]), list(bounds[1])]
        self.strategy = cma.CMAEvolutionStrategy(np.asarray(initial, np.float64), sigma, options)
        self._population: list[np.ndarray] = []
        self._values: list[float] = []

    def ask(self) -> np.ndarray:
        if len(self._values) == len(self._population):
            self._population, self._values = self.strategy.ask(), []
        return np.asarray(self._population[len(self._values)], np.float64)

    def tell(self, parameters, value) -> None:
        self._values.append(-float(value))
        if len(self._values) == len(self._population):
            self.strategy.tell(self._population, self._values)

    @property
    def theta(self) -> np.ndarray:
        return np.asarray(self.strategy.mean, np.float64)


class BOSearcher(Searcher):
    """Expected improvement (Trieste) on [low, high]^D after ``initial`` Sobol points."""

    def __init__(self, bounds, initial: int | None = None, seed: int = 0):
        from scipy.stats import qmc

        from saferl_tf.bo.proposers import TriestePenalty

        self.low, self.high = (np.asarray(b, np.float64) for b in bounds)
        dimension = self.low.shape[0]
        self.initial = initial or max(2 * dimension, 4)
        self._design = qmc.Sobol(dimension, scramble=True, seed=seed).random(self.initial)
        # The penalty proposer minimizes the ``penalty`` of its outcomes: here -value.
        self._proposer = TriestePenalty(dimension, seed)
        self._seed = seed
        self._rng = np.random.default_rng(seed)
        self.fallbacks = 0  # Proposals that failed and became uniform random points.
        self._points: list[np.ndarray] = []
        self._values: list[float] = []

    def __getstate__(self) -> dict:
        # The proposer caches Trieste models, which do not pickle; its state is
        # the data, which the searcher keeps, so a fresh one continues the search.
        state = self.__dict__.copy()
        state.pop("_proposer")
        return state

    def __setstate__(self, state: dict) -> None:
        from saferl_tf.bo.proposers import TriestePenalty

        self.__dict__.update(state)
        self._proposer = TriestePenalty(len(self.low), self._seed)

    def ask(self) -> np.ndarray:
        from saferl_tf.bo.study import Outcome

        count = len(self._points)
        if count < self.initial:
            unit = self._design[count]
        else:
            outcomes = [Outcome(v, 0.0, 0.0, v, 0.0, 0.0, -v) for v in self._values]
            try:
                unit = self._proposer.propose(
                    np.asarray(self._points), outcomes, np.zeros((0, len(self.low)))
                )
            except (tf.errors.InvalidArgumentError, ValueError, np.linalg.LinAlgError) as error:
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
