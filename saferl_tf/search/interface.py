"""The interface every policy-search method shares: ask / tell / run.

    searcher.ask() -> parameters [D]          # the next point to evaluate
    searcher.tell(parameters, value)          # its (noisy) value, to maximize
    result = searcher.run(objective, budget)  # budget = objective calls

One objective call is one evaluation, for every method alike.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np


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
