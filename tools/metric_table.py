"""Any logged metric of a results tree at chosen steps, per algorithm, as Markdown.

    .venv/bin/python tools/metric_table.py --data_path=results \
        --metric=lagrangian/multiplier --steps=2000,4000,8000

Reads ``<data_path>/<algo>/<env>/<run>/metrics.jsonl``; for each algorithm and
environment prints the metric's last logged value at or before each step,
mean ± std over runs (runs that have not logged it by then are left out), and
also the mean over the rows logged after ``--after`` (for example the episode
cost after a warm-up).

With ``--windows=10000,20000,...`` it prints instead the training episodes that
ended in each window of steps (0-10000, 10000-20000, ...): mean return, mean
episode cost, mean length and the cost per step (the window's cost over its
steps), each per run, then mean ± std over runs. The cost per step is what a
per-episode cost limit means when episodes end early (Hopper's do):

    .venv/bin/python tools/metric_table.py --data_path=runs/hopper/safety \
        --windows=10000,20000,30000,40000
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from absl import app, flags

from saferl_tf.cli import fail

flags.DEFINE_string("data_path", "results", "Root: <data_path>/<algo>/<env>/<run>/.")
flags.DEFINE_string("metric", "lagrangian/multiplier", "Metric name as logged.")
flags.DEFINE_list("steps", ["2000", "4000", "8000"], "Steps to report the metric at.")
flags.DEFINE_integer("after", 1000, "Also the mean of the rows logged after this step.")
flags.DEFINE_list("windows", [], "Window ends in steps: a table of training episodes per window.")
FLAGS = flags.FLAGS

EPISODE_COLUMNS = ("return", "episode cost", "length", "cost per step")


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


def window_stats(rows: list[dict], start: int, end: int) -> dict[str, float] | None:
    """Training episodes that ended in (start, end]: their mean return, cost and
    length, and the cost per step over the window's episodes; None without one."""
    episodes = [r for r in rows if "train/episode_return" in r and start < r["step"] <= end]
    if not episodes:
        return None
    length = sum(r["train/episode_length"] for r in episodes)
    cost = sum(r.get("train/episode_cost", 0.0) for r in episodes)
    return {
        "return": float(np.mean([r["train/episode_return"] for r in episodes])),
        "episode cost": cost / len(episodes),
        "length": length / len(episodes),
        "cost per step": cost / length,
    }


def _cell(values):
    values = [v for v in values if v is not None]
    if not values:
        return "—"
    if len(values) == 1:
        return f"{values[0]:.3g}"
    return f"{np.mean(values):.3g} ± {np.std(values):.2g}"


def window_table(found, ends: list[int]) -> None:
    print("| algorithm | env | steps | runs | " + " | ".join(EPISODE_COLUMNS) + " |")
    print("| --- | --- | --- | ---: |" + " ---: |" * len(EPISODE_COLUMNS))
    for (algo, env), group in sorted(found.items()):
        for start, end in zip([0, *ends[:-1]], ends):
            stats = [window_stats(rows, start, end) for rows in group]
            present = [s for s in stats if s is not None]
            cells = [_cell([s[column] for s in present]) for column in EPISODE_COLUMNS]
            print(
                f"| {algo} | {env} | {start}-{end} | {len(present)} | " + " | ".join(cells) + " |"
            )


def main(argv):
    del argv
    try:
        steps = [int(step) for step in FLAGS.steps]
        ends = [int(end) for end in FLAGS.windows]
    except ValueError:
        fail(f"--steps and --windows must be integers, got {','.join(FLAGS.steps)} "
             f"and {','.join(FLAGS.windows)}")  # fmt: skip
    if any(b <= a for a, b in zip([0, *ends], ends)):
        fail(f"--windows must be positive and increasing, got {','.join(FLAGS.windows)}")
    found = runs(Path(FLAGS.data_path))
    if not found:
        fail(f"no <algo>/<env>/<run>/metrics.jsonl under {FLAGS.data_path}")
    if ends:
        window_table(found, ends)
        return
    metric = FLAGS.metric
    header = [f"{metric} at {step}" for step in steps] + [f"mean after {FLAGS.after}"]
    print("| algorithm | env | runs | " + " | ".join(header) + " |")
    print("| --- | --- | ---: |" + " ---: |" * len(header))
    cell = _cell
    for (algo, env), group in sorted(found.items()):
        cells = [cell([value_at(rows, metric, step) for rows in group]) for step in steps]
        late = [np.mean(v) if (v := [r[metric] for r in rows
                                      if metric in r and r["step"] > FLAGS.after]) else None
                for rows in group]  # fmt: skip
        cells.append(cell(late))
        print(f"| {algo} | {env} | {len(group)} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    app.run(main)
