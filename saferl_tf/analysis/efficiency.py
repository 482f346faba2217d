"""Sample efficiency: the environment steps each run needs to reach a return
while keeping its cost under the limit, per algorithm, as a Markdown table.

For each run, the return and cost curves (``<prefix>/episode_return`` and
``<prefix>/episode_cost``) are smoothed over ``smooth`` logged points
(``results.moving_average``), and the answer is the first logged step where the
smoothed return is at least the threshold **and** the smoothed cost at that
step is at most the environment's cost limit (from the runs' configs, or
given). A run that never gets there counts as not reached; the table gives
how many did and the mean ± std over those, and each algorithm's mean steps
divided by the reference algorithm's (how many times more samples it needs).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from saferl_tf.analysis import results
from saferl_tf.errors import UserError


class StepsToReturn(NamedTuple):
    """One algorithm on one environment: steps per run for each threshold
    (None where a run did not reach it)."""

    env: str
    algo: str
    runs: int
    steps: dict[float, list[float | None]]


def first_step_reaching(steps, returns, costs, threshold: float, cost_limit: float | None,
                        smooth: int = 1) -> float | None:  # fmt: skip
    """The first of ``steps`` [T] where the smoothed return >= ``threshold`` and the
    smoothed cost <= ``cost_limit`` (no cost condition when None); None if never.
    ``returns`` and ``costs`` [T] are logged at the same ``steps``."""
    returns = results.moving_average(np.asarray(returns, np.float64), smooth)
    good = returns >= threshold
    if cost_limit is not None:
        good &= results.moving_average(np.asarray(costs, np.float64), smooth) <= cost_limit
    hits = np.flatnonzero(good)
    return float(steps[hits[0]]) if hits.size else None


def steps_to_return(data_path: str | Path, thresholds: Sequence[float], *, prefix: str = "eval",
                    smooth: int = 1, cost_limit: float | None = None,
                    warn=results.warn_stderr) -> list[StepsToReturn]:  # fmt: skip
    """``first_step_reaching`` for every run of the tree and every threshold.
    ``cost_limit`` None: each environment's limit from its runs' configs (no
    cost condition where they name none)."""
    if prefix not in results.PREFIXES:
        raise UserError(f"metrics prefix must be one of {', '.join(results.PREFIXES)}, "
                        f"got {prefix!r}")  # fmt: skip
    experiments = results.find_experiments(data_path, warn=warn)
    limits = results.read_cost_limits(experiments, warn=warn)
    names = (f"{prefix}/episode_return", f"{prefix}/episode_cost")
    curves = results.collect_curves(experiments, dict.fromkeys(names), warn=warn)
    rows = []
    for env in sorted(curves[names[0]], key=results._natural_key):
        limit = cost_limit if cost_limit is not None else limits.get(env)
        for algo in sorted(curves[names[0]][env]):
            costs = {c.experiment: c for c in curves[names[1]].get(env, {}).get(algo, [])}
            found: dict[float, list[float | None]] = {t: [] for t in thresholds}
            runs = 0
            for curve in curves[names[0]][env][algo]:
                cost = costs.get(curve.experiment)
                if cost is None or not np.array_equal(cost.steps, curve.steps):
                    warn(f"{env}/{algo}/{curve.experiment}: return and cost not logged at the "
                         "same steps; left out of the steps-to-return table")  # fmt: skip
                    continue
                runs += 1
                for threshold in thresholds:
                    step = first_step_reaching(curve.steps, curve.values, cost.values,
                                               threshold, limit, smooth)  # fmt: skip
                    found[threshold].append(step)
            if runs:
                rows.append(StepsToReturn(env, algo, runs, found))
    if not rows:
        raise results.NothingToPlotError(
            f"nothing to summarize under {data_path}: no run has {names[0]} and {names[1]}"
        )
    return rows


def steps_table(rows: Sequence[StepsToReturn], reference: str | None = None) -> str:
    """Markdown: per threshold, runs that reached it and their mean ± std steps,
    and (with ``reference``, an algorithm of the same environment that reached
    it) the ratio of mean steps to the reference's."""
    thresholds = list(rows[0].steps)
    header = "| env | algorithm | runs | " + " | ".join(
        f"steps to return {t:g}" for t in thresholds) + " |"  # fmt: skip
    lines = [header, "| --- | --- | ---: | " + " | ".join("---:" for _ in thresholds) + " |"]
    means = {(row.env, row.algo, t): _mean(row.steps[t]) for row in rows for t in thresholds}
    for row in rows:
        cells = []
        for threshold in thresholds:
            reached = [s for s in row.steps[threshold] if s is not None]
            if not reached:
                cells.append(f"not reached (0/{row.runs})")
                continue
            text = f"{np.mean(reached):,.0f}"
            if len(reached) > 1:
                text += f" ± {np.std(reached):,.0f}"
            text += f" ({len(reached)}/{row.runs})"
            base = means.get((row.env, reference, threshold)) if reference else None
            if base and row.algo != reference:
                text += f", {np.mean(reached) / base:.1f}× {reference}"
            cells.append(text)
        lines.append(f"| {row.env} | {row.algo} | {row.runs} | " + " | ".join(cells) + " |")
    lines += ["", "First logged step where the smoothed return reaches the threshold with the "
                  "smoothed cost at most the limit; mean ± std (ddof=0) over the runs that "
                  "reached it (reached/runs)."]  # fmt: skip
    return "\n".join(lines)


def _mean(values: list[float | None]) -> float | None:
    reached = [v for v in values if v is not None]
    return float(np.mean(reached)) if reached else None
