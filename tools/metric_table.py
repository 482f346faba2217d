"""Any logged metric of a results tree at chosen steps, per algorithm, as Markdown.

    .venv/bin/python tools/metric_table.py --data_path=results \
        --metric=lagrangian/multiplier --steps=2000,4000,8000

Reads ``<data_path>/<algo>/<env>/<run>/metrics.jsonl``; for each algorithm and
environment prints the metric's last logged value at or before each step,
mean ± std over runs (runs that have not logged it by then are left out), and
also the mean over the rows logged after ``--after`` (for example the episode
cost after a warm-up).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from absl import app, flags

flags.DEFINE_string("data_path", "results", "Root: <data_path>/<algo>/<env>/<run>/.")
flags.DEFINE_string("metric", "lagrangian/multiplier", "Metric name as logged.")
flags.DEFINE_list("steps", ["2000", "4000", "8000"], "Steps to report the metric at.")
flags.DEFINE_integer("after", 1000, "Also the mean of the rows logged after this step.")
FLAGS = flags.FLAGS


def runs(root: Path):
    """{(algo, env): [rows of one run, ...]}."""
    found: dict[tuple[str, str], list[list[dict]]] = {}
    for path in sorted(root.glob("*/*/*/metrics.jsonl")):
        algo, env = path.parent.parent.parent.name, path.parent.parent.name
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        found.setdefault((algo, env), []).append(rows)
    return found


def value_at(rows: list[dict], metric: str, step: int) -> float | None:
    logged = [row[metric] for row in rows if metric in row and row["step"] <= step]
    return float(logged[-1]) if logged else None


def main(argv):
    del argv
    try:
        steps = [int(step) for step in FLAGS.steps]
    except ValueError:
        sys.exit(f"error: --steps must be integers, got {','.join(FLAGS.steps)}")
    found = runs(Path(FLAGS.data_path))
    if not found:
        sys.exit(f"error: no <algo>/<env>/<run>/metrics.jsonl under {FLAGS.data_path}")
    metric = FLAGS.metric
    header = [f"{metric} at {step}" for step in steps] + [f"mean after {FLAGS.after}"]
    print("| algorithm | env | runs | " + " | ".join(header) + " |")
    print("| --- | --- | ---: |" + " ---: |" * len(header))

    def cell(values):
        values = [v for v in values if v is not None]
        if not values:
            return "—"
        if len(values) == 1:
            return f"{values[0]:.3g}"
        return f"{np.mean(values):.3g} ± {np.std(values):.2g}"

    for (algo, env), group in sorted(found.items()):
        cells = [cell([value_at(rows, metric, step) for rows in group]) for step in steps]
        late = [np.mean(v) if (v := [r[metric] for r in rows
                                      if metric in r and r["step"] > FLAGS.after]) else None
                for rows in group]  # fmt: skip
        cells.append(cell(late))
        print(f"| {algo} | {env} | {len(group)} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    app.run(main)
