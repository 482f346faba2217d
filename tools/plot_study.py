"""Plots a tuning study: ``python tools/plot_study.py --study_dir=results/tune/...``.

Writes ``<study_dir>/study.png`` and ``study.pdf`` (or ``<output>.png`` and
``.pdf``): objective and constraint per trial with feasibility, the best
feasible value so far, the constraint limit, and for a 2-D search space the GP
posterior mean of the objective. A figure that cannot be written (no
permission, no space) is one ``error:`` line, exit code 2, and leaves an
earlier figure as it was.
"""

from __future__ import annotations

from pathlib import Path

from absl import flags

from saferl_tf import cli

FLAGS = flags.FLAGS


def define_flags() -> None:
    flags.DEFINE_string("study_dir", None, "A study folder (holding study.json).", required=True)
    flags.DEFINE_string(
        "output",
        "",
        "Output path without suffix: writes <output>.png and .pdf (default <study_dir>/study).",
    )


def _plot():
    if FLAGS.dry_run:
        print(f"dry run: would plot the study in {FLAGS.study_dir}")
        return
    import matplotlib

    matplotlib.use("Agg")
    from saferl_tf.analysis.output import make_output_dir, save_figure
    from saferl_tf.analysis.study import plot_study
    from saferl_tf.bo.study import Study
    from saferl_tf.errors import UserError

    study = Study.load(FLAGS.study_dir)
    if study is None:
        raise UserError(f"no study.json in {FLAGS.study_dir}")
    figure = plot_study(study)
    output = Path(FLAGS.output or Path(FLAGS.study_dir) / "study")
    if output.suffix in (".png", ".pdf"):
        output = output.with_suffix("")
    make_output_dir(output.parent)
    for suffix in ("png", "pdf"):
        # Appended, not with_suffix: a name such as lr0.5 keeps its ".5".
        print(save_figure(figure, output.with_name(f"{output.name}.{suffix}"), dpi=120))


if __name__ == "__main__":
    cli.launch(__doc__, define_flags, _plot)
