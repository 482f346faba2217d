"""Cheap constrained test problems that run as trials, to check the tuner itself.

Each problem maps parameters to the same summary a training run writes
(``eval/episode_return`` = the objective to maximize, ``eval/episode_cost`` =
the constraint value, ``train/cost_rate``), so a synthetic trial goes through
exactly the tuner's path for training trials. Run one trial with::

    python -m saferl_tf.bo.synthetic --problem=gardner --params=params.yaml \
        --output=summary.json [--sleep=0.5]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import yaml

from saferl_tf.bo.space import Parameter, SearchSpace


@dataclasses.dataclass(frozen=True)
class ConstrainedProblem:
    """Maximize ``objective(x)`` subject to ``constraint(x) <= limit``."""

    name: str
    space: SearchSpace
    objective: Callable[[np.ndarray], np.ndarray]
    constraint: Callable[[np.ndarray], np.ndarray]
    limit: float

    def evaluate(self, params: dict[str, float]) -> dict[str, float]:
        x = np.asarray([[params[name] for name in self.space.names]], np.float64)
        constraint = float(self.constraint(x)[0])
        return {
            "eval/episode_return": float(self.objective(x)[0]),
            "eval/episode_cost": constraint,
            "train/cost_rate": constraint,
        }

    def grid_optimum(self, points_per_axis: int = 601) -> tuple[np.ndarray, float]:
        """The best feasible point on a dense grid (a reference for tests)."""
        axes = [np.linspace(p.low, p.high, points_per_axis) for p in self.space.parameters]
        grid = np.stack([g.ravel() for g in np.meshgrid(*axes, indexing="ij")], axis=-1)
        values = np.where(self.constraint(grid) <= self.limit, self.objective(grid), -np.inf)
        best = int(np.argmax(values))
        return grid[best], float(values[best])


def _gardner_objective(x: np.ndarray) -> np.ndarray:
    # Gardner et al. (2014), simulation 1: minimize cos(2x)cos(y) + sin(x).
    return -(np.cos(2.0 * x[:, 0]) * np.cos(x[:, 1]) + np.sin(x[:, 0]))


def _gardner_constraint(x: np.ndarray) -> np.ndarray:
    return np.cos(x[:, 0]) * np.cos(x[:, 1]) - np.sin(x[:, 0]) * np.sin(x[:, 1])


PROBLEMS = {
    "gardner": ConstrainedProblem(
        name="gardner",
        space=SearchSpace([Parameter("x", 0.0, 6.0), Parameter("y", 0.0, 6.0)]),
        objective=_gardner_objective,
        constraint=_gardner_constraint,
        limit=0.5,
    ),
}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problem", required=True, choices=sorted(PROBLEMS))
    parser.add_argument("--params", required=True, type=Path)
    parser.add_argument("--output", required=True, type=Path)
    parser.add_argument("--sleep", type=float, default=0.0, help="emulate a longer trial")
    args = parser.parse_args(argv)
    params = yaml.safe_load(args.params.read_text())
    time.sleep(args.sleep)
    summary = PROBLEMS[args.problem].evaluate(params)
    summary = {k: (v if math.isfinite(v) else str(v)) for k, v in summary.items()}
    args.output.write_text(json.dumps(summary) + "\n")


if __name__ == "__main__":
    main()
