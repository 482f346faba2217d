"""Plots a results tree: ``saferl-plot --data_path=results/``.

(``python tools/plot.py`` and ``python -m saferl_tf.cli.plot`` are the same
program.)

For each environment of ``<data_path>/<algo>/<env>/<experiment>/`` writes
``<output_dir>/<env>.png`` and ``<env>.pdf`` and prints their paths: return
(left) and cost (right) against environment steps, one line per algorithm (the
mean over its experiments, each run interpolated only within its own steps)
with a band of ± one standard deviation over runs (``--spread=minmax``: min to
max), and the cost limit as a dashed line. ``--metrics=train`` plots the
``train/`` metrics instead of ``eval/``; ``--extra_metrics=a/b,c/d`` adds a panel
for each of those logged metrics (for example ``lagrangian/multiplier``);
``--smooth=K`` averages each run over K
logged points first; ``--table`` also prints, per algorithm, the final return
and the total cost during learning: mean ± std over runs and, from 5 runs up,
the interquartile mean with a 95% stratified-bootstrap interval
(``--bootstrap_resamples``, seeded); ``--steps_to_return=500,1000`` also prints
the environment steps each algorithm needs to reach each return with its cost
under the limit (``analysis.efficiency``; ``--reference=ALGO`` adds each one's
ratio to that algorithm's). Unreadable runs are skipped with a
``warning:`` line each; when nothing can be plotted or a figure cannot be
written (no permission, no space): one ``error:`` line, exit code 2. Figures
are written to a temporary file and renamed, so a failed write leaves an
earlier figure as it was.
"""

from __future__ import annotations

from collections.abc import Sequence

from absl import flags

from saferl_tf import cli
from saferl_tf.errors import UserError

FLAGS = flags.FLAGS


def define_flags() -> None:
    from saferl_tf.analysis import stats

    flags.DEFINE_string(
        "data_path", "results", "Root of the results tree: <data_path>/<algo>/<env>/<experiment>/."
    )
    flags.DEFINE_string(
        "output_dir", "", "Where to write <env>.png and <env>.pdf (default: data_path)."
    )
    flags.DEFINE_enum(
        "metrics",
        "eval",
        ["eval", "train"],
        "Plot <metrics>/episode_return and <metrics>/episode_cost.",
    )
    flags.DEFINE_list(
        "extra_metrics", [], "Logged metrics to plot in panels beside return and cost."
    )
    flags.DEFINE_float("cost_limit", None, "Cost limit line (default: the runs' agent_config).")
    flags.DEFINE_integer("smooth", 1, "Moving average over K logged points per run.", lower_bound=1)
    flags.DEFINE_enum("spread", "std", ["std", "minmax"], "Band: mean ± 1 std, or min to max.")
    flags.DEFINE_bool(
        "table", False, "Also print a Markdown table: final return and total cost during learning."
    )
    flags.DEFINE_list(
        "steps_to_return",
        [],
        "Also print the environment steps each run needs to reach "
        "these returns with its cost under the limit (for example 500,1000).",
    )
    flags.DEFINE_string(
        "reference",
        None,
        "With --steps_to_return: the algorithm the others' steps are divided by.",
    )
    flags.DEFINE_integer(
        "bootstrap_resamples",
        stats.BOOTSTRAP_RESAMPLES,
        "Bootstrap resamples for the --table IQM intervals (rliable's default).",
        lower_bound=1,
    )


def run(argv: Sequence[str] | None = None) -> None:
    """The ``saferl-plot`` entry point; ``argv`` as ``sys.argv`` (program name first)."""
    cli.launch(__doc__, define_flags, _plot, argv)


def _plot():
    if FLAGS.dry_run:
        print(f"dry run: would plot {FLAGS.data_path} into {FLAGS.output_dir or FLAGS.data_path}")
        return
    import matplotlib

    matplotlib.use("Agg")  # Files only: no display needed.
    from saferl_tf.analysis import results
    from saferl_tf.analysis.output import make_output_dir, save_figure

    try:
        figures = results.plot_results(
            FLAGS.data_path,
            prefix=FLAGS.metrics,
            cost_limit=FLAGS.cost_limit,
            smooth=FLAGS.smooth,
            spread=FLAGS.spread,
            extra_metrics=FLAGS.extra_metrics,
        )
        output_dir = make_output_dir(FLAGS.output_dir or FLAGS.data_path)
        for env, figure in figures.items():
            for suffix in ("png", "pdf"):
                print(save_figure(figure, output_dir / f"{env}.{suffix}", dpi=150), flush=True)
        if FLAGS.table:
            resamples = FLAGS.bootstrap_resamples
            rows = results.summarize_learning(
                FLAGS.data_path, prefix=FLAGS.metrics, resamples=resamples
            )
            print(results.learning_table(rows, resamples=resamples), flush=True)
        if FLAGS.steps_to_return:
            from saferl_tf.analysis import efficiency

            thresholds = _floats("steps_to_return", FLAGS.steps_to_return)
            rows = efficiency.steps_to_return(
                FLAGS.data_path, thresholds, prefix=FLAGS.metrics, smooth=FLAGS.smooth,
                cost_limit=FLAGS.cost_limit,
            )  # fmt: skip
            print(efficiency.steps_table(rows, reference=FLAGS.reference), flush=True)
    except OSError as error:  # Reading the tree: an unreadable folder or file.
        raise UserError(f"cannot read the results: {error}") from None


def _floats(name: str, values: Sequence[str]) -> list[float]:
    try:
        return [float(value) for value in values]
    except ValueError:
        raise UserError(f"--{name} takes numbers separated by commas, got "
                        f"{','.join(values)!r}") from None  # fmt: skip


if __name__ == "__main__":
    run()
