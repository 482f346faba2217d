"""What a tuning study did, as arrays and as a figure.

``study_series(study)`` gives per-trial arrays (trial order):
objective, constraint, feasible (bool), failed (bool) and best_feasible_so_far
(NaN until the first feasible trial). ``plot_study(study)`` draws objective and
constraint per trial with feasibility, the best feasible value so far, the
constraint limit and, for a 2-D search space, the posterior mean of a GP fitted
to the objective over the space (in the parameters' own units).
"""

from __future__ import annotations

import dataclasses

import numpy as np
from matplotlib.figure import Figure

from saferl_tf.bo.space import SearchSpace
from saferl_tf.bo.study import DONE, FAILED, Study


@dataclasses.dataclass
class StudySeries:
    index: np.ndarray  # [N] trial numbers
    objective: np.ndarray  # [N] NaN for failed or unfinished trials
    constraint: np.ndarray  # [N]
    feasible: np.ndarray  # [N] bool
    failed: np.ndarray  # [N] bool
    best_feasible_so_far: np.ndarray  # [N]
    limit: float


def study_series(study: Study) -> StudySeries:
    trials = sorted(study.trials, key=lambda t: t.index)
    objective = np.full(len(trials), np.nan)
    constraint = np.full(len(trials), np.nan)
    feasible = np.zeros(len(trials), bool)
    for i, trial in enumerate(trials):
        if trial.status == DONE:
            objective[i], constraint[i] = trial.outcome.objective, trial.outcome.constraint
            feasible[i] = trial.outcome.feasible
    best = np.where(feasible, objective, -np.inf)
    best = np.maximum.accumulate(best) if len(best) else best
    best[np.isneginf(best)] = np.nan
    return StudySeries(
        index=np.asarray([t.index for t in trials]),
        objective=objective,
        constraint=constraint,
        feasible=feasible,
        failed=np.asarray([t.status == FAILED for t in trials], bool),
        best_feasible_so_far=best,
        limit=float(study.settings.get("cost_limit", np.nan)),
    )


def gp_mean_grid(study: Study, points_per_axis: int = 50):
    """A GP's posterior mean of the objective over a 2-D space.

    Returns (x [G], y [G], mean [G, G]) in parameter units, mean[j, i] at
    (x[i], y[j]); None when the space is not 2-D or fewer than 3 trials are done.
    """
    space = SearchSpace.parse(study.settings["space"])
    done = study.with_status(DONE)
    if space.dimension != 2 or len(done) < 3:
        return None
    import gpflow

    points = np.asarray([t.unit_point for t in done], np.float64)
    values = np.asarray([[t.outcome.objective] for t in done], np.float64)
    mean, std = values.mean(), values.std() or 1.0
    model = gpflow.models.GPR(
        (points, (values - mean) / std),
        gpflow.kernels.SquaredExponential(lengthscales=[0.2, 0.2]),
        noise_variance=1e-4,
    )
    gpflow.set_trainable(model.likelihood.variance, False)
    gpflow.optimizers.Scipy().minimize(model.training_loss, model.trainable_variables)
    unit = np.linspace(0.0, 1.0, points_per_axis)
    grid = np.stack([g.ravel() for g in np.meshgrid(unit, unit, indexing="xy")], axis=-1)
    predicted, _ = model.predict_f(grid)
    mean_grid = predicted.numpy().reshape(points_per_axis, points_per_axis) * std + mean
    first, second = space.parameters
    x = np.asarray([first.decode(u) for u in unit], np.float64)
    y = np.asarray([second.decode(u) for u in unit], np.float64)
    return x, y, mean_grid


def plot_study(study: Study) -> Figure:
    series = study_series(study)
    grid = gp_mean_grid(study)
    figure = Figure(figsize=(15 if grid else 10, 4), layout="constrained")
    axes = figure.subplots(1, 3 if grid else 2)
    objective_axis, constraint_axis = axes[0], axes[1]
    ok = ~np.isnan(series.objective)
    for mask, style, label in ((ok & series.feasible, "o", "feasible"),
                               (ok & ~series.feasible, "x", "infeasible")):  # fmt: skip
        objective_axis.plot(series.index[mask], series.objective[mask], style, label=label)
        constraint_axis.plot(series.index[mask], series.constraint[mask], style, label=label)
    objective_axis.plot(series.index, series.best_feasible_so_far, "-", label="best feasible")
    if series.failed.any():
        objective_axis.plot(series.index[series.failed], np.zeros(series.failed.sum()), "k|",
                            label="failed")  # fmt: skip
    constraint_axis.axhline(series.limit, linestyle="--", color="k", label="limit")
    objective_axis.set(xlabel="trial", ylabel="objective", title="objective (maximized)")
    constraint_axis.set(xlabel="trial", ylabel="constraint", title="constraint")
    for axis in (objective_axis, constraint_axis):
        axis.legend(fontsize="small")
    if grid:
        x, y, mean = grid
        axis = axes[2]
        contour = axis.contourf(x, y, mean, levels=20)
        figure.colorbar(contour, ax=axis, label="GP mean of the objective")
        space = SearchSpace.parse(study.settings["space"])
        params = np.asarray([[t.params[n] for n in space.names] for t in study.with_status(DONE)])
        feasible = np.asarray([t.outcome.feasible for t in study.with_status(DONE)])
        axis.plot(params[feasible, 0], params[feasible, 1], "wo", label="feasible")
        axis.plot(params[~feasible, 0], params[~feasible, 1], "rx", label="infeasible")
        axis.set(xlabel=space.names[0], ylabel=space.names[1], title="GP mean over the space")
        axis.legend(fontsize="small")
    return figure
