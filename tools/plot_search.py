"""Plots policy-search runs: ``python tools/plot_search.py --data_path=results/search``.

For each objective group of ``<data_path>/<method>/<objective>/<seed>/``
(synthetic functions of one dimension form one group) writes
``<output_dir>/<group>.png`` and ``.pdf``: normalized regret (synthetic; log
scale) or best value so far against evaluations (``--iterates``: the
searchers' current parameters as ``--iterate_every`` measured them), the mean over runs per method
with a band of ± one standard deviation (``--spread=minmax``: min to max), and
the episode cost beside it where runs logged one. Prints the final values as a
table. When nothing can be plotted or a figure cannot be written (no
permission, no space): one ``error:`` line, exit code 2; a failed write leaves
an earlier figure as it was.
"""

from __future__ import annotations

from absl import flags

from saferl_tf import cli

FLAGS = flags.FLAGS


def define_flags() -> None:
    flags.DEFINE_string(
        "data_path", "results/search", "Root: <data_path>/<method>/<objective>/<seed>/."
    )
    flags.DEFINE_string("output_dir", "", "Where to write the figures (default: data_path).")
    flags.DEFINE_enum("spread", "std", ["std", "minmax"], "Band: mean ± 1 std, or min to max.")
    flags.DEFINE_bool(
        "iterates",
        False,
        "Plot the searchers' current parameters as --iterate_every measured them "
        "(search/iterate_regret, search/iterate_return) instead of the best evaluation.",
    )


def _plot():
    if FLAGS.dry_run:
        print(f"dry run: would plot {FLAGS.data_path}")
        return
    import matplotlib

    matplotlib.use("Agg")
    from saferl_tf.analysis import search
    from saferl_tf.analysis.output import make_output_dir, save_figure

    figures = search.plot_search(FLAGS.data_path, spread=FLAGS.spread, iterates=FLAGS.iterates)
    output_dir = make_output_dir(FLAGS.output_dir or FLAGS.data_path)
    for group, figure in figures.items():
        for suffix in ("png", "pdf"):
            print(save_figure(figure, output_dir / f"{group}.{suffix}", dpi=120))
    print(format_table(search.final_values(FLAGS.data_path, iterates=FLAGS.iterates)))


def format_table(rows) -> str:
    lines = ["| objective | method | runs | evaluations | final mean ± std | median |",
             "| --- | --- | ---: | ---: | ---: | ---: |"]  # fmt: skip
    lines += [
        f"| {r.group} | {r.method} | {r.runs} | {r.evaluations} | "
        f"{r.mean:.3g} ± {r.std:.2g} | {r.median:.3g} |"
        for r in rows
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    cli.launch(__doc__, define_flags, _plot)
