"""A results tree as curves: read, aggregate over runs, plot.

A results tree is ``<data_path>/<algo>/<env>/<experiment>/`` (the experiment is
usually the seed), each experiment folder holding the ``metrics.jsonl`` that
``saferl_tf.training.logger.Logger`` writes (or, when that file is missing,
its TensorBoard event files) and a ``config.json``::

    curves = load_curves("results", "eval/episode_return")  # {env: {algo: [Curve]}}
    grid, mean, low, high, count = aggregate(curves[env][algo])
    figure = plot_environment(env, returns[env], costs[env], cost_limit=25.0)

Aggregation puts every run on a common step grid by linear interpolation inside
the run's own step range only: the mean at a grid step is over the runs that
reach it (``count``), never an extrapolation. The band around the mean is ± one
standard deviation over those runs (population, ``ddof=0``) by default, or the
minimum to maximum with ``spread="minmax"``. Problems with single runs (no
metrics file, nothing logged, a metric missing) are reported through ``warn``
(one line each, by default ``warning: ...`` on stderr) and the run is skipped;
only an unusable tree as a whole raises ``UserError``.
"""

from __future__ import annotations

import dataclasses
import json
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from saferl_tf.analysis import stats
from saferl_tf.errors import UserError

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

# The logger's file name, not imported from it: saferl_tf.training.logger imports TensorFlow.
METRICS_FILE = "metrics.jsonl"
CONFIG_FILE = "config.json"
EVENTS_GLOB = "events.out.tfevents.*"
PREFIXES = ("eval", "train")
QUANTITIES = ("episode_return", "episode_cost")
SPREADS = {"std": "mean ± 1 std over runs", "minmax": "mean, min to max over runs"}
MAX_GRID_POINTS = 1000
PLOT_SUFFIXES = (".png", ".pdf")

Warn = Callable[[str], None]
Series = tuple[np.ndarray, np.ndarray]


def warn_stderr(message: str) -> None:
    """The default ``warn``: one ``warning: ...`` line on stderr."""
    print(f"warning: {message}", file=sys.stderr, flush=True)


class NothingToPlotError(UserError):
    """The tree holds no run with the requested metrics."""


@dataclasses.dataclass(frozen=True)
class Experiment:
    """One experiment folder ``path`` = ``<data_path>/<algo>/<env>/<name>``."""

    algo: str
    env: str
    name: str
    path: Path


@dataclasses.dataclass(frozen=True, eq=False)
class Curve:
    """One run's metric: ``steps`` [T] strictly increasing environment steps and
    ``values`` [T] finite floats (T >= 1); ``metric`` is the tag actually read."""

    steps: np.ndarray
    values: np.ndarray
    experiment: str
    metric: str = ""


# {env: {algo: [Curve, one per experiment]}}
Curves = dict[str, dict[str, list[Curve]]]


class Aggregate(NamedTuple):
    """Runs on a common grid; all arrays [G]. Where ``count`` is 0 the rest is NaN."""

    grid: np.ndarray
    mean: np.ndarray
    low: np.ndarray
    high: np.ndarray
    count: np.ndarray


def _natural_key(name: str) -> list:
    # Seeds sort as numbers: 2 before 10. re.split alternates text and digits, so the
    # list positions always compare str with str and int with int.
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _subfolders(path: Path) -> list[Path]:
    folders = [p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")]
    return sorted(folders, key=lambda p: _natural_key(p.name))


def _holds_run(path: Path) -> bool:
    return any((path / name).exists() for name in (METRICS_FILE, CONFIG_FILE)) or any(
        path.glob(EVENTS_GLOB)
    )


def find_experiments(data_path: str | Path, *, warn: Warn = warn_stderr) -> list[Experiment]:
    """The experiment folders of the tree, sorted by algo, env, experiment (seeds numerically).

    Raises ``UserError`` when ``data_path`` is not a folder, or when it is a run folder or
    lies below the tree's root (a run's files one or two levels down), since the layout
    would then be read wrongly. Empty algorithm or environment folders are warned about.
    """
    root = Path(data_path)
    if not root.is_dir():
        raise UserError(f"data_path {root} is not a folder")
    algos = _subfolders(root)
    envs = [env for algo in algos for env in _subfolders(algo)]
    for folder in [root, *algos, *envs]:
        if _holds_run(folder):
            raise UserError(
                f"{folder} holds a run's files, but the results tree is "
                f"<data_path>/<algo>/<env>/<experiment>/: pass the tree's root as data_path"
            )
    experiments = []
    for algo in algos:
        # A folder of earlier plots (--output_dir inside the tree) is not worth a warning.
        entries = list(algo.iterdir())
        plots_only = entries and all(p.suffix in PLOT_SUFFIXES for p in entries)
        if not _subfolders(algo) and not plots_only:
            warn(f"{algo}: no environment folders; skipped")
        for env in _subfolders(algo):
            runs = _subfolders(env)
            if not runs:
                warn(f"{env}: no experiment folders; skipped")
            experiments += [Experiment(algo.name, env.name, run.name, run) for run in runs]
    return experiments


def _number(value) -> float | None:
    # The logger writes non-finite values as the strings "nan", "inf", "-inf".
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _read_jsonl(path: Path, warn: Warn) -> list[tuple[str, int, float]]:
    triples, unreadable = [], 0
    for line in path.read_text(errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            step = row["step"]
        except (ValueError, KeyError, TypeError):  # A killed run can leave half a line.
            unreadable += 1
            continue
        if isinstance(step, bool) or not isinstance(step, int | float):
            unreadable += 1
            continue
        for tag, value in row.items():
            number = _number(value)
            if tag != "step" and number is not None:
                triples.append((tag, int(step), number))
    if unreadable:
        warn(f"{path}: {unreadable} unreadable line(s) left out")
    return triples


def _read_events(paths: Sequence[Path], warn: Warn) -> list[tuple[str, int, float]]:
    import tensorflow as tf  # Here only: importing TensorFlow takes seconds.

    triples = []
    for path in paths:
        try:
            for event in tf.compat.v1.train.summary_iterator(str(path)):
                for value in event.summary.value:
                    number = None
                    if value.HasField("tensor"):
                        array = tf.make_ndarray(value.tensor)
                        # Images and text share the file; only numeric scalars are curves.
                        if array.size == 1 and np.issubdtype(array.dtype, np.number):
                            number = float(array.reshape(()))
                    elif value.HasField("simple_value"):  # TF1-style summaries.
                        number = float(value.simple_value)
                    if number is not None:
                        triples.append((value.tag, int(event.step), number))
        except tf.errors.DataLossError:
            warn(f"{path}: truncated event file; read up to the damage")
    return triples


def read_scalars(run_dir: str | Path, *, warn: Warn = warn_stderr) -> dict[str, Series]:
    """Every scalar of one run: ``{tag: (steps [T] int64 increasing, values [T] float64)}``.

    Reads ``metrics.jsonl``; only when it is missing, the TensorBoard event files. A step
    logged twice (a resumed run) keeps its last value, as TensorBoard shows. Values may be
    non-finite. Returns ``{}`` for a run that logged nothing yet; raises
    ``FileNotFoundError`` when the folder has neither file.
    """
    run_dir = Path(run_dir)
    if (run_dir / METRICS_FILE).exists():
        triples = _read_jsonl(run_dir / METRICS_FILE, warn)
    else:
        events = sorted(run_dir.glob(EVENTS_GLOB))  # Names start with the creation time.
        if not events:
            raise FileNotFoundError(f"{run_dir}: no {METRICS_FILE} and no TensorBoard events")
        triples = _read_events(events, warn)
    by_tag: dict[str, dict[int, float]] = {}
    for tag, step, value in triples:
        by_tag.setdefault(tag, {})[step] = value
    scalars = {}
    for tag, points in by_tag.items():
        steps = np.array(sorted(points), np.int64)
        scalars[tag] = (steps, np.array([points[s] for s in steps.tolist()], np.float64))
    return scalars


def _names(metric: str, fallback: str | None) -> str:
    return f"{metric} (nor {fallback})" if fallback else metric


def collect_curves(
    experiments: Iterable[Experiment],
    metrics: Mapping[str, str | None],
    *,
    warn: Warn = warn_stderr,
) -> dict[str, Curves]:
    """Curves of several metrics, each run read once.

    ``metrics`` maps each wanted tag to a fallback tag (or None) read from runs that lack
    the wanted one. Returns ``{metric: {env: {algo: [Curve]}}}`` with a key for every
    metric; envs and algos appear only where some run has that metric. Non-finite values
    are left out of the curves. Each problem is one ``warn`` line naming the run.
    """
    found: dict[str, Curves] = {metric: {} for metric in metrics}
    for experiment in experiments:
        where = experiment.path
        try:
            scalars = read_scalars(where, warn=warn)
        except FileNotFoundError as error:
            warn(f"{error}; skipped")
            continue
        if not scalars:
            warn(f"{where}: nothing logged; skipped")
            continue
        fallbacks, missing = [], []
        for metric, fallback in metrics.items():
            tag = metric if metric in scalars else fallback if fallback in scalars else None
            if tag is None:
                missing.append(_names(metric, fallback))
                continue
            steps, values = scalars[tag]
            finite = np.isfinite(values)
            if not finite.all():
                warn(f"{where}: {np.sum(~finite)} non-finite {tag} value(s) left out")
            if not finite.any():
                missing.append(f"{tag} (no finite value)")
                continue
            if tag != metric:
                fallbacks.append((metric, tag))
            curve = Curve(steps[finite].astype(np.float64), values[finite], experiment.name, tag)
            found[metric].setdefault(experiment.env, {}).setdefault(experiment.algo, [])
            found[metric][experiment.env][experiment.algo].append(curve)
        if fallbacks:
            wanted, used = (", ".join(names) for names in zip(*fallbacks))
            warn(f"{where}: no {wanted}; using {used} instead")
        if len(missing) == len(metrics):
            warn(f"{where}: no {', '.join(missing)}; skipped")
        elif missing:
            warn(f"{where}: no {', '.join(missing)}; left out of those plots")
    return found


def load_curves(
    data_path: str | Path,
    metric: str,
    *,
    fallback: str | None = None,
    warn: Warn = warn_stderr,
) -> Curves:
    """One metric of every run in the tree: ``{env: {algo: [Curve]}}``.

    Runs without ``metric`` use ``fallback`` when they have it (with a warning); runs that
    cannot be read are warned about and left out.
    """
    experiments = find_experiments(data_path, warn=warn)
    return collect_curves(experiments, {metric: fallback}, warn=warn)[metric]


def read_cost_limits(
    experiments: Iterable[Experiment], *, warn: Warn = warn_stderr
) -> dict[str, float]:
    """``{env: agent_config.cost_limit}`` from the runs' ``config.json``.

    Envs whose runs name no cost limit are absent, and so are runs that did not enforce
    theirs (``agent_config.safety`` false: every agent config carries a default limit,
    which a run without ``--safety`` never used). When the runs of an env disagree, the
    most common value wins (the smaller on a tie), with a warning.
    """
    limits: dict[str, Counter] = {}
    for experiment in experiments:
        path = experiment.path / CONFIG_FILE
        if not path.exists():
            continue
        try:
            agent_config = json.loads(path.read_text())["agent_config"]
            limit = agent_config["cost_limit"]
        except (ValueError, KeyError, TypeError):
            continue  # No cost limit in this agent's config; a malformed file says nothing.
        if agent_config.get("safety", True) is False:
            continue
        limit = _number(limit)
        if limit is not None:
            limits.setdefault(experiment.env, Counter())[limit] += 1
    chosen = {}
    for env, counts in limits.items():
        chosen[env] = max(sorted(counts), key=lambda value: counts[value])
        if len(counts) > 1:
            values = ", ".join(f"{value:g}" for value in sorted(counts))
            warn(f"{env}: runs have different cost limits ({values}); drawing {chosen[env]:g}")
    return chosen


def moving_average(values: np.ndarray, points: int) -> np.ndarray:
    """Mean over a window of ``points`` logged points centred on each point [T] -> [T].

    The window shrinks at the ends (so nothing is padded or lost) and counts points, not
    steps. ``points <= 1`` returns a copy.
    """
    values = np.asarray(values, np.float64)
    if points <= 1 or values.size == 0:
        return values.copy()
    before = (points - 1) // 2
    after = points - 1 - before
    sums = np.concatenate([[0.0], np.cumsum(values)])
    index = np.arange(values.size)
    start = np.maximum(index - before, 0)
    stop = np.minimum(index + after + 1, values.size)
    return (sums[stop] - sums[start]) / (stop - start)


def step_grid(curves: Sequence[Curve], max_points: int = MAX_GRID_POINTS) -> np.ndarray:
    """The union of the curves' steps [G], sorted; when longer than ``max_points``,
    ``max_points`` evenly spaced steps over the same range instead. Empty for no curves."""
    if not curves:
        return np.empty(0)
    steps = np.unique(np.concatenate([curve.steps for curve in curves]))
    if steps.size > max_points:  # Train metrics at episode ends differ per run: bound the size.
        steps = np.linspace(steps[0], steps[-1], max_points)
    return steps.astype(np.float64)


def aggregate(
    curves: Sequence[Curve], grid: np.ndarray | None = None, *, spread: str = "std"
) -> Aggregate:
    """Mean and spread of N runs on ``grid`` [G] (default: ``step_grid(curves)``).

    Each run is linearly interpolated at the grid steps inside its own first..last step
    and absent elsewhere, so ``count`` [G] is the number of runs reaching each step and
    the statistics use only those. ``spread="std"``: ``low, high = mean -/+ std``
    (``ddof=0``); ``"minmax"``: the minimum and maximum. Returns ``Aggregate(grid, mean,
    low, high, count)``, which unpacks as a tuple; NaN where ``count`` is 0.
    """
    if spread not in SPREADS:
        raise ValueError(f"spread must be one of {', '.join(SPREADS)}, got {spread!r}")
    grid = step_grid(curves) if grid is None else np.asarray(grid, np.float64)
    table = np.full((len(curves), grid.size), np.nan)  # [N, G]
    for row, curve in zip(table, curves):
        inside = (grid >= curve.steps[0]) & (grid <= curve.steps[-1])
        row[inside] = np.interp(grid[inside], curve.steps, curve.values)
    count = np.sum(~np.isnan(table), axis=0)
    mean, low, high = (np.full(grid.size, np.nan) for _ in range(3))
    covered = count > 0  # nanmean of an all-NaN column would warn.
    if covered.any():
        part = table[:, covered]
        mean[covered] = np.nanmean(part, axis=0)
        if spread == "std":
            std = np.nanstd(part, axis=0)
            low[covered], high[covered] = mean[covered] - std, mean[covered] + std
        else:
            low[covered], high[covered] = np.nanmin(part, axis=0), np.nanmax(part, axis=0)
    return Aggregate(grid, mean, low, high, count)


def aggregate_algorithms(
    curves_by_algo: Mapping[str, Sequence[Curve]],
    *,
    smooth: int = 1,
    spread: str = "std",
    max_points: int = MAX_GRID_POINTS,
) -> dict[str, Aggregate]:
    """``{algo: Aggregate}`` as plotted: each run smoothed by ``moving_average(values,
    smooth)`` on its own points first, then aggregated on the algo's ``step_grid``."""
    aggregates = {}
    for algo, curves in curves_by_algo.items():
        smoothed = [
            dataclasses.replace(curve, values=moving_average(curve.values, smooth))
            for curve in curves
        ]
        aggregates[algo] = aggregate(smoothed, step_grid(smoothed, max_points), spread=spread)
    return aggregates


def draw_panel(
    axes: Axes,
    aggregates: Mapping[str, Aggregate],
    colors: Mapping[str, str],
    metric: str,
    spread: str,
    xlabel: str = "environment steps",
) -> None:
    for algo, (grid, mean, low, high, _) in aggregates.items():
        axes.fill_between(grid, low, high, color=colors[algo], alpha=0.2, linewidth=0)
        axes.plot(grid, mean, color=colors[algo], label=algo)
    if not aggregates:
        axes.text(0.5, 0.5, "no data", transform=axes.transAxes, ha="center", va="center")
    axes.set_xlabel(xlabel)
    axes.set_ylabel(metric)
    axes.grid(alpha=0.3)


def plot_environment(
    env: str,
    return_curves: Mapping[str, Sequence[Curve]],
    cost_curves: Mapping[str, Sequence[Curve]],
    *,
    cost_limit: float | None = None,
    smooth: int = 1,
    spread: str = "std",
    max_points: int = MAX_GRID_POINTS,
    return_metric: str = "episode_return",
    cost_metric: str = "episode_cost",
    extra_curves: Mapping[str, Mapping[str, Sequence[Curve]]] | None = None,
) -> Figure:
    """One figure for ``env``: return (left axes) and cost (right axes) against steps.

    Per algorithm, one line labelled with its name whose data are exactly the ``mean``
    of ``aggregate_algorithms(...)[algo]`` against its ``grid``, and a band from ``low``
    to ``high``; the same colour in both panels. The cost panel also has the cost limit
    as a dashed horizontal line (an ``axhline``, label ``cost limit <value>``). Uses the
    Agg canvas, no pyplot, so nothing global is kept and no display is needed.
    ``extra_curves`` ({metric: {algo: curves}}) adds one panel per metric to the
    right, drawn the same way (for example the multiplier beside return and cost).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    returns = aggregate_algorithms(
        return_curves, smooth=smooth, spread=spread, max_points=max_points
    )
    costs = aggregate_algorithms(cost_curves, smooth=smooth, spread=spread, max_points=max_points)
    extras = {metric: aggregate_algorithms(curves, smooth=smooth, spread=spread,
                                           max_points=max_points)
              for metric, curves in (extra_curves or {}).items()}  # fmt: skip
    algos = sorted(set(returns).union(costs, *extras.values()), key=_natural_key)
    colors = {algo: f"C{index % 10}" for index, algo in enumerate(algos)}

    panels = 2 + len(extras)
    figure = Figure(figsize=(6 * panels, 4.5), layout="constrained")
    FigureCanvasAgg(figure)
    return_axes, cost_axes, *extra_axes = figure.subplots(1, panels)
    draw_panel(return_axes, returns, colors, return_metric, spread)
    draw_panel(cost_axes, costs, colors, cost_metric, spread)
    for axes, (metric, aggregates) in zip(extra_axes, extras.items()):
        draw_panel(axes, aggregates, colors, metric, spread)
        axes.set_title(metric)
    if cost_limit is not None:
        cost_axes.axhline(
            cost_limit,
            color="black",
            linestyle="--",
            linewidth=1,
            label=f"cost limit {cost_limit:g}",
        )
    for axes in (return_axes, cost_axes, *extra_axes):
        if axes.get_lines():
            axes.legend(title=SPREADS[spread], fontsize="small", title_fontsize="small")
    return_axes.set_title("return")
    cost_axes.set_title("cost")
    figure.suptitle(env)
    return figure


def plot_results(
    data_path: str | Path,
    *,
    prefix: str = "eval",
    cost_limit: float | None = None,
    smooth: int = 1,
    spread: str = "std",
    max_points: int = MAX_GRID_POINTS,
    extra_metrics: Sequence[str] = (),
    warn: Warn = warn_stderr,
) -> dict[str, Figure]:
    """``{env: Figure}`` for every environment of the tree with something to plot.

    Plots ``<prefix>/episode_return`` and ``<prefix>/episode_cost`` (``prefix`` is
    ``eval`` or ``train``; a run lacking them uses the other prefix, with a warning),
    and a panel for each of ``extra_metrics`` (logged tags, e.g.
    ``lagrangian/multiplier``). The
    cost limit is ``cost_limit`` or else the runs' ``agent_config.cost_limit``. Raises
    ``NothingToPlotError`` (a ``UserError``) when no run has either metric.
    """
    if prefix not in PREFIXES:
        raise UserError(f"metrics prefix must be one of {', '.join(PREFIXES)}, got {prefix!r}")
    if smooth < 1:
        raise UserError(f"smoothing must be at least 1 point, got {smooth}")
    if spread not in SPREADS:
        raise UserError(f"spread must be one of {', '.join(SPREADS)}, got {spread!r}")
    other = next(name for name in PREFIXES if name != prefix)
    experiments = find_experiments(data_path, warn=warn)
    metrics = {f"{prefix}/{quantity}": f"{other}/{quantity}" for quantity in QUANTITIES}
    curves = collect_curves(experiments, {**metrics, **dict.fromkeys(extra_metrics)}, warn=warn)
    returns, costs = (curves[f"{prefix}/{quantity}"] for quantity in QUANTITIES)
    envs = sorted(set(returns) | set(costs), key=_natural_key)
    if not envs:
        where = "no experiment folders" if not experiments else "no run has " + " or ".join(metrics)
        raise NothingToPlotError(
            f"nothing to plot under {data_path}: {where} "
            "(expected <data_path>/<algo>/<env>/<experiment>/metrics.jsonl)"
        )
    limits = {}
    if cost_limit is None:
        limits = read_cost_limits([e for e in experiments if e.env in envs], warn=warn)
    return {
        env: plot_environment(
            env,
            returns.get(env, {}),
            costs.get(env, {}),
            cost_limit=cost_limit if cost_limit is not None else limits.get(env),
            smooth=smooth,
            spread=spread,
            max_points=max_points,
            return_metric=f"{prefix}/episode_return",
            cost_metric=f"{prefix}/episode_cost",
            extra_curves={metric: curves[metric].get(env, {}) for metric in extra_metrics},
        )
        for env in envs
    }


class LearningSummary(NamedTuple):
    """One algorithm on one environment, over its runs (mean and std over runs, and
    from ``stats.MIN_RUNS_FOR_IQM`` runs on the IQM with a 95% bootstrap interval)."""

    env: str
    algo: str
    runs: int
    final_return: float  # The last logged <prefix>/episode_return.
    final_return_std: float
    total_cost: float  # Cost summed over every training step (cost_rate x steps).
    total_cost_std: float
    steps: float  # Environment steps trained (mean over runs).
    final_return_iqm: stats.Interval | None = None  # None below the minimum of runs.
    total_cost_iqm: stats.Interval | None = None


def summarize_learning(
    data_path: str | Path,
    *,
    prefix: str = "train",
    warn: Warn = warn_stderr,
    min_runs_for_iqm: int = stats.MIN_RUNS_FOR_IQM,
    resamples: int = stats.BOOTSTRAP_RESAMPLES,
    seed: int = stats.BOOTSTRAP_SEED,
) -> list[LearningSummary]:
    """Final return and total training cost per (env, algorithm), from the tree.

    The total cost during learning is ``train/cost_rate`` (total cost over total
    environment steps so far) times the step it was logged at, at the last
    logged point: every violation while training counts, whatever the logging
    interval. Means and stds are over runs (``ddof=0``). With at least
    ``min_runs_for_iqm`` runs, each row also has the interquartile mean of both
    quantities and its percentile 95% interval from ``resamples`` bootstrap resamples
    of the runs (``stats.stratified_bootstrap`` with the row's environment as the one
    stratum, generator seeded with ``seed``). Raises ``NothingToPlotError`` when no
    run has the metrics.
    """
    if prefix not in PREFIXES:
        raise UserError(f"metrics prefix must be one of {', '.join(PREFIXES)}, got {prefix!r}")
    if resamples < 1:
        raise UserError(f"bootstrap resamples must be at least 1, got {resamples}")
    experiments = find_experiments(data_path, warn=warn)
    metrics = {f"{prefix}/episode_return": None, "train/cost_rate": None}
    curves = collect_curves(experiments, metrics, warn=warn)
    returns, rates = curves[f"{prefix}/episode_return"], curves["train/cost_rate"]

    def interval(scores: np.ndarray) -> stats.Interval | None:
        if scores.size < max(min_runs_for_iqm, 1):
            return None
        return stats.stratified_bootstrap([scores], resamples=resamples, seed=seed)

    rows = []
    for env in sorted(set(returns) & set(rates), key=_natural_key):
        for algo in sorted(set(returns[env]) & set(rates[env])):
            by_run = {c.experiment: c for c in rates[env][algo]}
            paired = [(r, by_run[r.experiment]) for r in returns[env][algo]
                      if r.experiment in by_run]  # fmt: skip
            if not paired:
                continue
            finals = np.array([r.values[-1] for r, _ in paired])
            totals = np.array([c.values[-1] * c.steps[-1] for _, c in paired])
            steps = np.array([c.steps[-1] for _, c in paired])
            rows.append(LearningSummary(env, algo, len(paired), float(finals.mean()),
                                        float(finals.std()), float(totals.mean()),
                                        float(totals.std()), float(steps.mean()),
                                        interval(finals), interval(totals)))  # fmt: skip
    if not rows:
        raise NothingToPlotError(
            f"nothing to summarize under {data_path}: no run has {prefix}/episode_return "
            "and train/cost_rate"
        )
    return rows


def learning_table(
    rows: Sequence[LearningSummary],
    *,
    min_runs_for_iqm: int = stats.MIN_RUNS_FOR_IQM,
    resamples: int = stats.BOOTSTRAP_RESAMPLES,
) -> str:
    """A Markdown table of ``summarize_learning``'s rows, and a line saying what the IQM
    columns are (pass the same ``min_runs_for_iqm`` and ``resamples``)."""
    lines = [
        "| env | algorithm | runs | steps | final return | total cost during learning "
        "| final return IQM [95% CI] | total cost IQM [95% CI] |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]

    def cell(mean: float, std: float, runs: int) -> str:
        return f"{mean:.1f}" if runs == 1 else f"{mean:.1f} ± {std:.1f}"  # No spread of one run.

    def iqm_cell(interval: stats.Interval | None) -> str:
        if interval is None:
            return "—"
        return f"{interval.estimate:.1f} [{interval.low:.1f}, {interval.high:.1f}]"

    for row in rows:
        lines.append(
            f"| {row.env} | {row.algo} | {row.runs} | {row.steps:,.0f} | "
            f"{cell(row.final_return, row.final_return_std, row.runs)} | "
            f"{cell(row.total_cost, row.total_cost_std, row.runs)} | "
            f"{iqm_cell(row.final_return_iqm)} | {iqm_cell(row.total_cost_iqm)} |"
        )
    lines += [
        "",
        f"mean ± std (ddof=0) over runs; IQM: interquartile mean over runs, [95% CI]: "
        f"percentile bootstrap over runs ({resamples:,} resamples), "
        f"from {min_runs_for_iqm} runs up (— with fewer).",
    ]
    return "\n".join(lines)
