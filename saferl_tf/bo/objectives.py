"""Objectives for policy search: synthetic GP-sample functions (GIBO's benchmark).

``gp_sample_function(dimension, index)`` is the posterior mean of a GP through
1,000 scrambled-Sobol points on [0, 1]^D whose values were drawn from the GP
prior (outputscale 1, noise variance 0.01, lengthscale 2 * dn(D) * 0.1 / dn(2)
with dn(n) = sqrt(n / 6) * sqrt((1 + 2 sqrt(1 - 3 / (5 n))) / 3), the scale
of the mean distance of uniform points). The draw is fixed by (D, index), so
the same call always gives the same function; ``save``/``load`` keep a set.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np

NUM_SUPPORT = 1000
NOISE_VARIANCE = 0.01


def mean_distance_scale(n: int) -> float:
    return math.sqrt(n / 6) * math.sqrt((1 + 2 * math.sqrt(1 - 3 / (5 * n))) / 3)


def synthetic_lengthscale(dimension: int) -> float:
    return 2 * mean_distance_scale(dimension) * 0.1 / mean_distance_scale(2)


@dataclasses.dataclass
class GPSampleFunction:
    """f(x) = k(x, X) alpha on [0, 1]^D, to be maximized. x [N, D] -> [N]."""

    support: np.ndarray  # [S, D]
    alpha: np.ndarray  # [S]
    lengthscale: float

    @property
    def dimension(self) -> int:
        return self.support.shape[1]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.atleast_2d(np.asarray(x, np.float64))
        squared = ((x[:, None, :] - self.support[None, :, :]) ** 2).sum(-1)
        return np.exp(-0.5 * squared / self.lengthscale**2) @ self.alpha

    def save(self, path: str | Path) -> None:
        np.savez(path, support=self.support, alpha=self.alpha, lengthscale=self.lengthscale)

    @classmethod
    def load(cls, path: str | Path) -> GPSampleFunction:
        with np.load(path) as data:
            return cls(data["support"], data["alpha"], float(data["lengthscale"]))


def gp_sample_function(dimension: int, index: int) -> GPSampleFunction:
    from scipy.stats import qmc

    seed = 1_000 * dimension + index
    support = qmc.Sobol(dimension, scramble=True, seed=seed).random_base2(10)[:NUM_SUPPORT]
    lengthscale = synthetic_lengthscale(dimension)
    squared = ((support[:, None, :] - support[None, :, :]) ** 2).sum(-1)
    gram = np.exp(-0.5 * squared / lengthscale**2)
    noisy = gram + NOISE_VARIANCE * np.eye(NUM_SUPPORT)
    chol = np.linalg.cholesky(noisy)
    values = chol @ np.random.default_rng(seed).normal(size=NUM_SUPPORT)
    alpha = np.linalg.solve(noisy, values)
    return GPSampleFunction(support, alpha, lengthscale)
