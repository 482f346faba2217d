"""Plots a tuning study: ``python tools/plot_study.py --study_dir=results/tune/...``.

Writes ``<study_dir>/study.png`` and ``study.pdf``: objective and constraint per
trial with feasibility, the best feasible value so far, the constraint limit,
and for a 2-D search space the GP posterior mean of the objective.
"""

from __future__ import annotations

from pathlib import Path

from absl import app, flags

from saferl_tf import cli

flags.DEFINE_string("study_dir", None, "A study folder (holding study.json).", required=True)
flags.DEFINE_string("output", "", "Output path without suffix (default <study_dir>/study).")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    cli.run_guarded(_plot)


def _plot():
    import matplotlib

    matplotlib.use("Agg")
    from saferl_tf.analysis.study import plot_study
    from saferl_tf.bo.study import Study
    from saferl_tf.errors import UserError

    study = Study.load(FLAGS.study_dir)
    if study is None:
        raise UserError(f"no study.json in {FLAGS.study_dir}")
    figure = plot_study(study)
    output = Path(FLAGS.output or Path(FLAGS.study_dir) / "study")
    for suffix in ("png", "pdf"):
        path = output.with_suffix(f".{suffix}")
        figure.savefig(path, dpi=120)
        print(path)


if __name__ == "__main__":
    app.run(main, flags_parser=cli.flags_parser)
