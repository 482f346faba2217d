"""Objectives for policy search: GIBO's synthetic GP-sample functions, and the
objective specs that ``launchers/search.py`` accepts.

``gp_sample_function(dimension, index)`` is the posterior mean of a GP through
1,000 scrambled-Sobol points on [0, 1]^D whose values were drawn from the GP
prior (outputscale 1, noise variance 0.01, lengthscale 2 * dn(D) * 0.1 / dn(2)
with dn(n) = sqrt(n / 6) * sqrt((1 + 2 sqrt(1 - 3 / (5 n))) / 3), the scale
of the mean distance of uniform points). The draw is fixed by (D, index), so
the same call always gives the same function; ``save``/``load`` keep a set.
``maximum()`` finds the global maximum by multi-start L-BFGS-B from the best of
the support and 2^14 Sobol points (exact for the gradient-based search it
uses only up to the chance of missing a narrow peak, which the dense start set
makes unlikely at D <= 16; the value is cached in the saved file).

``make_objective(spec)`` builds what a search optimizes:

    synthetic:D:INDEX   gp_sample_function(D, INDEX) on [0, 1]^D, from 0.5 * 1
    lqr                 a linear policy u = K x on saferl_LQR-v0 (9 parameters)
    <env id>            a linear (or MLP) policy on any ``saferl_tf.envs`` id,
                        e.g. gym_CartPole-v1, gym_Swimmer-v4, sgym_SafetyPointGoal1-v0
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np

from saferl_tf.errors import ConfigError, UnknownNameError

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
    max_value: float | None = None  # Cached by ``maximum()``.
    argmax: np.ndarray | None = None

    @property
    def dimension(self) -> int:
        return self.support.shape[1]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.atleast_2d(np.asarray(x, np.float64))
        squared = ((x[:, None, :] - self.support[None, :, :]) ** 2).sum(-1)
        return np.exp(-0.5 * squared / self.lengthscale**2) @ self.alpha

    def gradient(self, x: np.ndarray) -> np.ndarray:
        """df/dx [D] at one point x [D]."""
        difference = np.asarray(x, np.float64)[None, :] - self.support  # [S, D]
        weights = np.exp(-0.5 * (difference**2).sum(-1) / self.lengthscale**2) * self.alpha
        return -(weights[:, None] * difference).sum(0) / self.lengthscale**2

    def maximum(self, starts: int = 20) -> tuple[float, np.ndarray]:
        """(max f, argmax) over [0, 1]^D, computed once and cached."""
        if self.max_value is None:
            from scipy.optimize import minimize
            from scipy.stats import qmc

            d = self.dimension
            candidates = np.vstack(
                [self.support, qmc.Sobol(d, scramble=True, seed=0).random_base2(14)]
            )
            values = np.concatenate(
                [self(chunk) for chunk in np.array_split(candidates, len(candidates) // 2048)]
            )
            best_value, best_point = float(values.max()), candidates[int(np.argmax(values))]
            for start in candidates[np.argsort(-values)[:starts]]:
                result = minimize(
                    lambda x: (-float(self(x)[0]), -self.gradient(x)), start, jac=True,
                    method="L-BFGS-B", bounds=[(0.0, 1.0)] * d,
                )  # fmt: skip
                if -result.fun > best_value:
                    best_value, best_point = float(-result.fun), np.clip(result.x, 0.0, 1.0)
            self.max_value, self.argmax = best_value, best_point
        return self.max_value, self.argmax

    def save(self, path: str | Path) -> None:
        extra = {} if self.max_value is None else {"max_value": self.max_value,
                                                   "argmax": self.argmax}  # fmt: skip
        np.savez(path, support=self.support, alpha=self.alpha, lengthscale=self.lengthscale,
                 **extra)  # fmt: skip

    @classmethod
    def load(cls, path: str | Path) -> GPSampleFunction:
        with np.load(path) as data:
            maximum = float(data["max_value"]) if "max_value" in data else None
            argmax = data.get("argmax")
            return cls(data["support"], data["alpha"], float(data["lengthscale"]), maximum, argmax)


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


def cached_gp_sample_function(dimension: int, index: int, cache_dir: str | Path | None):
    """``gp_sample_function`` with its maximum, kept in ``cache_dir/D<D>-<INDEX>.npz``."""
    path = None if cache_dir is None else Path(cache_dir) / f"D{dimension}-{index}.npz"
    if path is not None and path.exists():
        function = GPSampleFunction.load(path)
        if function.max_value is not None:
            return function
    function = gp_sample_function(dimension, index)
    function.maximum()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(path.stem + ".tmp.npz")
        function.save(temporary)
        temporary.replace(path)
    return function


# --- objectives as ``launchers/search.py`` sees them ---------------------------


class SyntheticObjective:
    """A GP-sample function on [0, 1]^D, observed with Gaussian noise.

    The searcher gets the noisy value; ``info()`` reports the noise-free value
    and the normalized regret (f* - f(x)) / (f* - f(x0)) of the best point so
    far by its noise-free value, as in GIBO's synthetic figure.
    """

    def __init__(self, dimension: int, index: int, noise_std: float = 0.1, seed: int = 0,
                 cache_dir: str | Path | None = None):  # fmt: skip
        self.function = cached_gp_sample_function(dimension, index, cache_dir)
        self.name = f"synthetic-D{dimension}-f{index}"
        self.dimension = dimension
        self.initial = np.full(dimension, 0.5)
        self.bounds = (np.zeros(dimension), np.ones(dimension))
        self.noise_std = noise_std
        self.rng = np.random.default_rng(seed)
        self.max_value = self.function.maximum()[0]
        self.initial_value = float(self.function(self.initial)[0])
        self.best_true = -np.inf
        self._last_true = float("nan")

    def __call__(self, parameters) -> float:
        self._last_true = float(self.function(parameters)[0])
        self.best_true = max(self.best_true, self._last_true)
        return self._last_true + self.noise_std * float(self.rng.normal())

    def info(self) -> dict[str, float]:
        gap = self.max_value - self.initial_value
        return {
            "true_value": self._last_true,
            "best_true_value": self.best_true,
            "normalized_regret": (self.max_value - self.best_true) / gap if gap > 0 else 0.0,
        }

    def evaluate_iterate(self, parameters, episodes: int = 1, at: int = 0) -> dict[str, float]:
        """The noise-free value and normalized regret of a searcher's current
        parameters (the published synthetic figure's regret is over these);
        ``episodes`` and ``at`` are for the interface's sake (noise-free)."""
        del episodes, at
        value = float(self.function(np.asarray(parameters, np.float64))[0])
        gap = self.max_value - self.initial_value
        regret = (self.max_value - value) / gap if gap > 0 else 0.0
        return {"iterate_value": value, "iterate_regret": regret}

    def state(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state, "best_true": self.best_true}

    def load_state(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.best_true = state["best_true"]

    def close(self) -> None:
        pass


def parse_objective_spec(spec: str) -> tuple[str, tuple]:
    """'synthetic:8:3' -> ('synthetic', (8, 3)); 'lqr' -> ('env', ('saferl_LQR-v0',));
    an environment id -> ('env', (id,)). Bad specs are one-line ``ConfigError``s."""
    accepted = "synthetic:D:INDEX, lqr, or an environment id such as gym_Swimmer-v4"
    if spec.startswith("synthetic"):
        parts = spec.split(":")
        try:
            _, dimension, index = parts
            dimension, index = int(dimension), int(index)
        except ValueError:
            raise ConfigError(f"bad objective {spec!r}; accepted: {accepted}") from None
        if dimension < 1 or index < 0:
            raise ConfigError(f"bad objective {spec!r}: D must be >= 1 and INDEX >= 0")
        return "synthetic", (dimension, index)
    if spec == "lqr":
        return "env", ("saferl_LQR-v0",)
    from saferl_tf.envs.registry import parse_env_id

    try:
        parse_env_id(spec)
    except UnknownNameError as error:
        raise UnknownNameError(f"{error}; objectives accepted: {accepted}") from None
    return "env", (spec,)


def make_objective(spec: str, *, seed: int = 0, noise_std: float = 0.1, episodes: int = 1,
                   policy: str = "linear", hidden: tuple[int, ...] = (16,), bias: bool = False,
                   normalize: bool = False, episode_length: int | None = None,
                   reward_shift: float = 0.0, reward_scale: float = 1.0,
                   cache_dir: str | Path | None = None):  # fmt: skip
    """The objective a spec names (see the module docstring)."""
    kind, arguments = parse_objective_spec(spec)
    if kind == "synthetic":
        return SyntheticObjective(*arguments, noise_std=noise_std, seed=seed,
                                  cache_dir=cache_dir)  # fmt: skip
    from saferl_tf.search.policies import EpisodeObjective

    if policy not in ("linear", "mlp"):
        raise ConfigError(f"unknown policy {policy!r}; accepted: linear, mlp")
    return EpisodeObjective(arguments[0], policy=policy, hidden=hidden, bias=bias,
                            episodes=episodes, normalize=normalize, seed=seed,
                            reward_shift=reward_shift, reward_scale=reward_scale,
                            episode_length=episode_length)  # fmt: skip
