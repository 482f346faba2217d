"""How well the policy batch's cost stands for the current policy's real cost
in CMBPO runs (docs/BENCHMARKS.md, issue 14).

For every policy update logged in ``metrics.jsonl`` under each run folder
given, the real steps' cost per step (``policy/real_cost_per_episode`` /
episode length), the whole batch's (``policy/batch_cost_per_step``) and the
model samples' alone (solved from the two and the sample counts), with the
constraint's case. The summary per run: the model samples' cost as a share of
the real cost, and how many updates had real steps above the limit while the
batch said otherwise.

Usage: .venv/bin/python tools/cmbpo_constraint_cost.py RUN_DIR [RUN_DIR ...]
       [--cost_limit=10] [--episode_length=1000] [--rows]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # Only CASE_NAMES is needed from TF's side.
from saferl_tf.rl.cpo import CASE_NAMES  # noqa: E402


def updates(run_dir: Path, episode_length: int) -> list[dict]:
    """One row per policy update: step, real/batch/model cost per step, counts, case."""
    metrics = run_dir / "metrics.jsonl"
    if not metrics.is_file():
        raise FileNotFoundError(f"{run_dir}: no metrics.jsonl (not a run folder)")
    rows = {}
    for line in metrics.read_text().splitlines():
        record = json.loads(line)
        if "policy/batch_cost_per_step" in record:
            rows[record["step"]] = record  # A resumed run repeats a step: keep the last.
    result = []
    for step in sorted(rows):
        record = rows[step]
        real = record["policy/real_cost_per_episode"] / episode_length
        batch = record["policy/batch_cost_per_step"]
        real_count = record["policy/real_samples"]
        model_count = record.get("rollout/samples", 0.0)
        model = (batch * (real_count + model_count) - real * real_count) / max(model_count, 1.0)
        result.append({"step": step, "real": real, "batch": batch,
                       "model": model if model_count else float("nan"),
                       "real_samples": real_count, "model_samples": model_count,
                       "case": int(record["policy/case"]),
                       "margin": record.get("policy/margin", 0.0),
                       "constraint": record["policy/constraint"]})  # fmt: skip
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dirs", nargs="+", type=Path)
    parser.add_argument("--cost_limit", type=float, default=10.0)
    parser.add_argument("--episode_length", type=int, default=1000)
    parser.add_argument("--rows", action="store_true", help="print every update")
    args = parser.parse_args(argv)
    limit = args.cost_limit / args.episode_length
    try:
        runs = [(run_dir, updates(run_dir, args.episode_length)) for run_dir in args.run_dirs]
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(
        "| run | updates | real cost / 1,000 steps | model samples' cost / real | "
        "updates with real > limit | of them batch <= limit | cases (count) |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for run_dir, rows in runs:
        if args.rows:
            for row in rows:
                print(f"  {row['step']:8d} real {row['real']:.4f} batch {row['batch']:.4f} "
                      f"model {row['model']:.4f} case {row['case']} "
                      f"margin {row['margin']:.2e}")  # fmt: skip
        real = np.array([r["real"] for r in rows])
        model = np.array([r["model"] for r in rows])
        batch = np.array([r["batch"] for r in rows])
        costly = (real > 0) & np.isfinite(model)
        share = float(model[costly].sum() / real[costly].sum()) if costly.any() else float("nan")
        over = real > limit
        missed = over & (batch <= limit)
        cases = {}
        for r in rows:
            cases[r["case"]] = cases.get(r["case"], 0) + 1
        case_text = ", ".join(f"{k}: {v}" for k, v in sorted(cases.items()))
        print(f"| {run_dir} | {len(rows)} | {1000 * real.mean():.2f} | {share:.2f} | "
              f"{int(over.sum())} | {int(missed.sum())} | {case_text} |")  # fmt: skip
    print("cases: " + "; ".join(f"{k} {v}" for k, v in CASE_NAMES.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
