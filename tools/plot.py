"""Plots a results tree: ``python tools/plot.py --data_path=results/``.

For each environment of ``<data_path>/<algo>/<env>/<experiment>/`` writes
``<output_dir>/<env>.png`` and ``<env>.pdf`` and prints their paths: return
(left) and cost (right) against environment steps, one line per algorithm (the
mean over its experiments, each run interpolated only within its own steps)
with a band of ± one standard deviation over runs (``--spread=minmax``: min to
max), and the cost limit as a dashed line. ``--metrics=train`` plots the
``train/`` metrics instead of ``eval/``; ``--smooth=K`` averages each run over K
logged points first; ``--table`` also prints, per algorithm, the final return
and the total cost during learning (mean ± std over runs). Unreadable runs are
skipped with a ``warning:`` line each; when nothing can be plotted: one
``error:`` line, exit code 2.
"""

from __future__ import annotations

from pathlib import Path

from absl import app, flags

from saferl_tf import cli
from saferl_tf.errors import UserError

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
flags.DEFINE_float("cost_limit", None, "Cost limit line (default: the runs' agent_config).")
flags.DEFINE_integer("smooth", 1, "Moving average over K logged points per run.", lower_bound=1)
flags.DEFINE_enum("spread", "std", ["std", "minmax"], "Band: mean ± 1 std, or min to max.")
flags.DEFINE_bool(
    "table", False, "Also print a Markdown table: final return and total cost during learning."
)

FLAGS = flags.FLAGS


def main(argv):
    del argv
    import matplotlib

    matplotlib.use("Agg")  # Files only: no display needed.
    from saferl_tf.analysis import results

    try:
        figures = results.plot_results(
            FLAGS.data_path,
            prefix=FLAGS.metrics,
            cost_limit=FLAGS.cost_limit,
            smooth=FLAGS.smooth,
            spread=FLAGS.spread,
        )
        output_dir = Path(FLAGS.output_dir or FLAGS.data_path)
        output_dir.mkdir(parents=True, exist_ok=True)
        for env, figure in figures.items():
            for suffix in ("png", "pdf"):
                path = output_dir / f"{env}.{suffix}"
                figure.savefig(path, dpi=150)
                print(path, flush=True)
        if FLAGS.table:
            rows = results.summarize_learning(FLAGS.data_path, prefix=FLAGS.metrics)
            print(results.learning_table(rows), flush=True)
    except UserError as error:
        cli.fail(str(error), error.exit_code)
    except OSError as error:
        cli.fail(f"cannot write the plots: {error}")


if __name__ == "__main__":
    app.run(main, flags_parser=cli.flags_parser)
