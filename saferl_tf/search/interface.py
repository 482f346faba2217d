"""The interface every policy-search method shares: ask / tell / run.

    searcher.ask() -> parameters [D]          # the next point to evaluate
    searcher.tell(parameters, value)          # its (noisy) value, to maximize
    searcher.iterate() -> parameters [D] | None  # the current estimate, if it has one
    result = searcher.run(objective, budget)  # budget = objective calls

    saved = searcher.state()                  # JSON values and numpy arrays
    fresh.load_state(saved)                   # fresh: built with the same arguments

One objective call is one evaluation, for every method alike. ``state`` is
what ``saferl_tf.search.state`` writes (nested dicts and lists of JSON values
and numpy arrays, never objects): a searcher built with the same arguments
that loads it asks for the same points as the original would have.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np


def checked_array(value, shape: tuple[int | None, ...], name: str) -> np.ndarray:
    """A float64 copy of ``value`` with ``shape`` (None: any size), for ``load_state``."""
    array = np.array(value, np.float64)
    if array.ndim != len(shape) or any(
        want is not None and have != want for have, want in zip(array.shape, shape)
    ):
        expected = "x".join("N" if size is None else str(size) for size in shape) or "scalar"
        raise ValueError(f"{name} has shape {array.shape}, expected {expected}")
    return array


@dataclasses.dataclass
class SearchResult:
    parameters: np.ndarray  # [budget, D] every evaluated point, in order
    values: np.ndarray  # [budget]
    best_so_far: np.ndarray  # [budget] running maximum of ``values``

    @property
    def best_parameters(self) -> np.ndarray:
        return self.parameters[int(np.argmax(self.values))]


class Searcher:
    """Base class: subclasses implement ``ask`` and ``tell``."""

    def ask(self) -> np.ndarray:
        raise NotImplementedError

    def tell(self, parameters: np.ndarray, value: float) -> None:
        raise NotImplementedError

    def iterate(self) -> np.ndarray | None:
        """The current parameter estimate (GIBO's and ARS's theta, CMA-ES's mean),
        or None for a method without one."""
        theta = getattr(self, "theta", None)
        return None if theta is None else np.asarray(theta, np.float64).copy()

    def state(self) -> dict:
        """Everything the next asks depend on, as JSON values and numpy arrays."""
        raise NotImplementedError

    def load_state(self, state: dict) -> None:
        """Continues from ``state()`` of a searcher built with the same arguments."""
        raise NotImplementedError

    def run(
        self,
        objective: Callable[[np.ndarray], float],
        budget: int,
        callback: Callable[[int, np.ndarray, float], None] | None = None,
    ) -> SearchResult:
        points, values = [], []
        for evaluation in range(budget):
            parameters = np.asarray(self.ask(), np.float64)
            value = float(objective(parameters))
            self.tell(parameters, value)
            points.append(parameters)
            values.append(value)
            if callback is not None:
                callback(evaluation, parameters, value)
        values = np.asarray(values)
        return SearchResult(np.asarray(points), values, np.maximum.accumulate(values))
