"""GIBO against ARS, vanilla BO and CMA-ES on synthetic GP-sample functions.

Runs ``launchers/search.py`` for every method, dimension and function (one
seed each by default) into ``--results_dir``, ``--workers`` runs at a time,
cheapest methods first; finished runs are kept, so a killed benchmark resumes.
Then prints the final normalized regret per method and dimension (mean ± std
and median over functions and seeds) and the wall time per evaluation of each
method's searcher (ask + tell, without the objective). Usage::

    .venv/bin/python tools/bench_search.py [--dimensions=4,8,16] [--functions=3] \
        [--methods=ars,cmaes,gibo,bo] [--budget=300] [--workers=2]
    .venv/bin/python tools/plot_search.py --data_path=results/bench_search
    # The table again, over functions 0-7 only, with GIBO against its oracle
    # function by function:
    .venv/bin/python tools/bench_search.py --report_only --functions=8 \
        --methods=gibo,gibo:oracle --paired=gibo/gibo:oracle
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from absl import app, flags

flags.DEFINE_list("dimensions", ["4", "8", "16"], "Dimensions D of the synthetic functions.")
flags.DEFINE_integer("functions", 3, "Functions per dimension (indices 0..N-1).")
flags.DEFINE_list("seeds", ["0"], "Searcher/noise seeds per function.")
flags.DEFINE_list(
    "methods",
    ["ars", "cmaes", "gibo", "bo"],
    "Methods, run in this order; METHOD:PRESET runs a preset (saferl_tf/search/presets.py), "
    "e.g. gibo:oracle, ars:paper_synthetic.",
)
flags.DEFINE_integer("budget", 300, "Evaluations per run.")
flags.DEFINE_float("noise_std", 0.1, "Observation noise of the synthetic functions.")
flags.DEFINE_integer("workers", 2, "Runs at once.")
flags.DEFINE_string("results_dir", "results/bench_search", "Results tree of the runs.")
flags.DEFINE_string("functions_dir", "results/synthetic_functions", "Generated functions.")
flags.DEFINE_bool("report_only", False, "Print the tables of the finished runs; run nothing.")
flags.DEFINE_list(
    "paired",
    [],
    "A/B pairs of methods compared function by function (same function and "
    "seed): B's regret over A's, and the mean paired difference A - B with its standard error.",
)
FLAGS = flags.FLAGS

ROOT = Path(__file__).resolve().parent.parent


def _finished(run_dir: Path) -> bool:
    path = run_dir / "summary.json"
    return path.exists() and json.loads(path.read_text())["evaluations"] >= FLAGS.budget


def _label(spec: str) -> str:
    """The run folder's method name: ``gibo``, ``gibo-oracle`` for ``gibo:oracle``."""
    return spec.replace(":", "-", 1)


def _run(spec: str, dimension: int, index: int, seed: str) -> tuple[str, float, int]:
    method, _, preset = spec.partition(":")
    run_dir = Path(FLAGS.results_dir) / _label(spec) / f"synthetic-D{dimension}-f{index}" / seed
    if _finished(run_dir):
        return str(run_dir), 0.0, 0
    command = [
        sys.executable, str(ROOT / "launchers" / "search.py"), f"--method={method}",
        f"--objective=synthetic:{dimension}:{index}", f"--budget={FLAGS.budget}",
        f"--seed={seed}", f"--noise_std={FLAGS.noise_std}", "--noprogress",
        f"--results_dir={FLAGS.results_dir}", f"--functions_dir={FLAGS.functions_dir}",
    ] + ([f"--preset={preset}"] if preset else [])  # fmt: skip
    started = time.perf_counter()
    completed = subprocess.run(command, capture_output=True, text=True)
    if completed.returncode != 0:
        print(completed.stderr[-2000:], file=sys.stderr)
    return str(run_dir), time.perf_counter() - started, completed.returncode


def main(argv):
    del argv
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    dimensions = [int(d) for d in FLAGS.dimensions]
    if FLAGS.report_only:
        report(dimensions)
        return
    # Generate (and cache) the functions and their maxima once, before the workers need them.
    from saferl_tf.search.objectives import cached_gp_sample_function

    for dimension in dimensions:
        for index in range(FLAGS.functions):
            cached_gp_sample_function(dimension, index, FLAGS.functions_dir)
    jobs = [
        (method, dimension, index, seed)
        for method in FLAGS.methods
        for dimension in dimensions
        for index in range(FLAGS.functions)
        for seed in FLAGS.seeds
    ]
    print(f"{len(jobs)} runs, {FLAGS.workers} at a time", flush=True)
    failed = 0
    with concurrent.futures.ThreadPoolExecutor(FLAGS.workers) as pool:
        for run_dir, seconds, code in pool.map(lambda job: _run(*job), jobs):
            failed += code != 0
            print(f"{'FAILED' if code else 'done'} {run_dir} ({seconds:.0f} s)", flush=True)
    report(dimensions)
    if failed:
        sys.exit(1)


def _final_regrets(spec: str, dimension: int) -> dict[tuple[int, str], float]:
    """{(function, seed): final normalized regret} of the finished runs among
    functions 0..--functions-1 and --seeds."""
    regrets = {}
    for index in range(FLAGS.functions):
        for seed in FLAGS.seeds:
            path = Path(FLAGS.results_dir, _label(spec), f"synthetic-D{dimension}-f{index}", seed)
            if _finished(path):
                summary = json.loads((path / "summary.json").read_text())
                regrets[index, seed] = float(summary["final_normalized_regret"])
    return regrets


def report(dimensions: list[int]) -> None:
    import numpy as np

    print(f"\nFinal normalized regret after the budget, functions 0-{FLAGS.functions - 1}, "
          "mean ± std (median; runs):\n")  # fmt: skip
    header = "| method | " + " | ".join(f"D = {d}" for d in dimensions) + " |"
    print(header)
    print("| --- |" + " ---: |" * len(dimensions))
    for method in FLAGS.methods:
        cells = []
        for dimension in dimensions:
            values = np.array(list(_final_regrets(method, dimension).values()))
            cells.append(f"{values.mean():.3f} ± {values.std():.3f} ({np.median(values):.3f}; "
                         f"n={len(values)})" if len(values) else "-")  # fmt: skip
        print(f"| {method} | " + " | ".join(cells) + " |")
    for pair in FLAGS.paired:
        first, _, second = pair.partition("/")
        print(f"\n{first} against {second}, function by function:\n")
        print("| D | pairs | mean regret ratio | paired difference, mean ± s.e. |")
        print("| ---: | ---: | ---: | ---: |")
        for dimension in dimensions:
            a, b = _final_regrets(first, dimension), _final_regrets(second, dimension)
            keys = sorted(set(a) & set(b))
            if not keys:
                continue
            x, y = np.array([a[k] for k in keys]), np.array([b[k] for k in keys])
            error = (x - y).std(ddof=1) / np.sqrt(len(keys)) if len(keys) > 1 else float("nan")
            print(f"| {dimension} | {len(keys)} | {x.mean() / y.mean():.2f} | "
                  f"{(x - y).mean():+.3f} ± {error:.3f} |")  # fmt: skip
    print("\nSearcher seconds per evaluation (ask + tell, mean over runs):\n")
    print(header)
    print("| --- |" + " ---: |" * len(dimensions))
    for method in FLAGS.methods:
        cells = []
        for dimension in dimensions:
            times = []
            folder = Path(FLAGS.results_dir, _label(method))
            for path in folder.glob(f"synthetic-D{dimension}-f*/*/"):
                summary = path / "summary.json"
                if summary.exists():
                    times.append(json.loads(summary.read_text())["searcher_seconds_per_evaluation"])
            cells.append(f"{statistics.mean(times):.3g}" if times else "-")
        print(f"| {method} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    app.run(main)
