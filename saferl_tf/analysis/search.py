"""Policy-search runs as GIBO's comparison figure and table.

``launchers/search.py`` writes ``<root>/<method>/<objective>/<seed>/``. Runs
are grouped by objective, and synthetic functions of one dimension form one
group (``synthetic-D8-f0``, ``synthetic-D8-f1``, ... -> ``synthetic-D8``), so
the mean and spread are over functions and seeds as in the paper::

    curves = load_search_curves("results/search", "search/normalized_regret")
    figures = plot_search("results/search")        # {group: Figure}
    rows = final_values("results/search")          # one row per (group, method)

Synthetic groups plot ``search/normalized_regret`` (log scale, lower is
better); other objectives ``search/best_so_far``, and beside it
``search/episode_cost`` where runs logged a cost. With ``iterates=True`` they
plot the searchers' current parameters as ``--iterate_every`` measured them
instead: ``search/iterate_regret`` and ``search/iterate_return`` (the
published GIBO figures' quantity).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from saferl_tf.analysis import results
from saferl_tf.analysis.results import Curve, Warn, warn_stderr

if TYPE_CHECKING:
    from matplotlib.figure import Figure

REGRET = "search/normalized_regret"
BEST = "search/best_so_far"
COST = "search/episode_cost"
ITERATE_REGRET = "search/iterate_regret"
ITERATE_RETURN = "search/iterate_return"
_SYNTHETIC = re.compile(r"^(synthetic-D\d+)-f\d+$")

# {group: {method: [Curve]}}
SearchCurves = dict[str, dict[str, list[Curve]]]


def objective_group(objective_folder: str) -> str:
    match = _SYNTHETIC.match(objective_folder)
    return match.group(1) if match else objective_folder


def primary_metric(group: str, iterates: bool = False) -> str:
    synthetic = group.startswith("synthetic-D")
    if iterates:
        return ITERATE_REGRET if synthetic else ITERATE_RETURN
    return REGRET if synthetic else BEST


def load_search_curves(
    root: str | Path,
    metrics=(REGRET, BEST, COST, ITERATE_REGRET, ITERATE_RETURN),
    *,
    iterates: bool = False,
    warn: Warn = warn_stderr,
) -> dict[str, SearchCurves]:
    """``{metric: {group: {method: [Curve]}}}``; a curve's ``experiment`` is
    ``<objective>/<seed>``."""
    experiments = results.find_experiments(root, warn=warn)
    # Only the metrics a run's group plots are required of it.
    found = results.collect_curves(experiments, dict.fromkeys(metrics), warn=lambda _: None)
    grouped: dict[str, SearchCurves] = {metric: {} for metric in metrics}
    for metric, by_objective in found.items():
        for objective, by_method in by_objective.items():
            group = objective_group(objective)
            for method, curves in by_method.items():
                target = grouped[metric].setdefault(group, {}).setdefault(method, [])
                target.extend(
                    Curve(c.steps, c.values, f"{objective}/{c.experiment}", c.metric)
                    for c in curves
                )
    for group in {objective_group(e.env) for e in experiments}:
        metric = primary_metric(group, iterates)
        if metric in grouped and group not in grouped[metric]:
            warn(f"no run of {group} has {metric}; left out")
    return grouped


class FinalValue(NamedTuple):
    group: str
    method: str
    runs: int
    mean: float
    std: float
    median: float
    evaluations: int  # The smallest final evaluation count over the runs.


def final_values(root: str | Path, *, iterates: bool = False,
                 warn: Warn = warn_stderr) -> list[FinalValue]:  # fmt: skip
    """The primary metric at each run's last evaluation, per (group, method)."""
    curves = load_search_curves(root, iterates=iterates, warn=warn)
    rows = []
    for metric in (ITERATE_REGRET, ITERATE_RETURN) if iterates else (REGRET, BEST):
        for group, by_method in sorted(curves[metric].items()):
            if primary_metric(group, iterates) != metric:
                continue
            for method, runs in sorted(by_method.items()):
                last = np.array([curve.values[-1] for curve in runs])
                rows.append(FinalValue(
                    group, method, len(runs), float(last.mean()), float(last.std()),
                    float(np.median(last)), int(min(curve.steps[-1] for curve in runs)),
                ))  # fmt: skip
    return rows


def plot_group(group: str, curves: Mapping[str, SearchCurves], *, spread: str = "std",
               iterates: bool = False) -> Figure:  # fmt: skip
    """One figure: the group's primary metric against evaluations, per method
    (mean and band over runs), and the episode cost beside it when a run
    logged a non-zero one."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    metric = primary_metric(group, iterates)
    # A task without a cost (MuJoCo, synthetic) logs zeros: no empty panel.
    cost_runs = [run for runs in curves.get(COST, {}).get(group, {}).values() for run in runs]
    has_cost = any(np.any(np.asarray(run.values) != 0) for run in cost_runs)
    panels = [metric] + ([COST] if has_cost else [])
    figure = Figure(figsize=(6 * len(panels), 4.5), layout="constrained")
    FigureCanvasAgg(figure)
    axes_list = np.atleast_1d(figure.subplots(1, len(panels)))
    methods = sorted({m for p in panels for m in curves[p].get(group, {})})
    colors = {method: f"C{index % 10}" for index, method in enumerate(methods)}
    for axes, panel in zip(axes_list, panels):
        aggregates = results.aggregate_algorithms(curves[panel].get(group, {}), spread=spread)
        results.draw_panel(axes, aggregates, colors, panel, spread, xlabel="evaluations")
        if panel in (REGRET, ITERATE_REGRET):
            axes.set_yscale("log")
        if axes.get_lines():
            axes.legend(title=results.SPREADS[spread], fontsize="small", title_fontsize="small")
    runs = max(len(v) for v in curves[metric][group].values())
    figure.suptitle(f"{group} (up to {runs} runs per method)")
    return figure


def plot_search(root: str | Path, *, spread: str = "std", iterates: bool = False,
                warn: Warn = warn_stderr) -> dict[str, Figure]:  # fmt: skip
    curves = load_search_curves(root, iterates=iterates, warn=warn)
    primaries = (ITERATE_REGRET, ITERATE_RETURN) if iterates else (REGRET, BEST)
    groups = sorted({g for metric in primaries for g in curves[metric]})
    figures = {
        group: plot_group(group, curves, spread=spread, iterates=iterates)
        for group in groups
        if group in curves[primary_metric(group, iterates)]
    }
    if not figures:
        raise results.NothingToPlotError(
            f"no search run under {root} has {primaries[0]} or {primaries[1]}; "
            "expected <root>/<method>/<objective>/<seed>/metrics.jsonl from launchers/search.py"
        )
    return figures
