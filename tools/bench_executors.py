"""Runs per hour of short training runs through the local and the Ray executor
(1 and 2 slots), measured side by side in one process, and the scheduling
overhead per run (docs/BENCHMARKS.md, issue 18).

The same ``--runs`` training runs (seeds 0..runs-1 of one agent, environment
and length) go through: plain ``subprocess.run`` one after another (the bare
cost of a run), the local executor with 1 and 2 workers, and the Ray executor
with 1 and 2 slots on a local Ray instance of 2 CPUs started once (its start
time reported apart). Configurations alternate within each repeat. Overhead per
run at 1 slot: (wall time / runs) minus the bare run's mean time.

Usage: .venv/bin/python tools/bench_executors.py [--runs=4] [--repeats=2]
       [--agent=cpo --config=debug --env=saferl_PointHazard-v0 --total_steps=2000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])

from saferl_tf.distributed import LocalExecutor  # noqa: E402
from saferl_tf.distributed.jobs import RUN_DIR, Job  # noqa: E402


def jobs(args) -> list[Job]:
    base = ["saferl_tf.cli.train", f"--agent={args.agent}", f"--env={args.env}",
            f"--total_steps={args.total_steps}", "--eval_every=0", "--noprogress",
            f"--checkpoint_every={args.total_steps // 2}", f"--run_dir={RUN_DIR}"]  # fmt: skip
    if args.config:
        base.append(f"--config={args.config}")
    return [
        Job(f"run_{seed}", f"run_{seed}", (*base, f"--seed={seed}")) for seed in range(args.runs)
    ]


def bare(args, root: Path) -> list[float]:
    """Each run as a plain child process, one after another: seconds per run."""
    seconds = []
    for job in jobs(args):
        run_dir = root / job.folder
        run_dir.mkdir(parents=True)
        started = time.perf_counter()
        subprocess.run(job.command(run_dir), check=True, capture_output=True)
        seconds.append(time.perf_counter() - started)
    return seconds


def through(executor, args) -> float:
    """Wall seconds for all runs through ``executor``."""
    queue = jobs(args)
    started = time.perf_counter()
    while queue or executor.running():
        while queue and executor.free_slots() > 0:
            executor.submit(queue.pop(0))
        for result in executor.wait(0.05):
            if not result.ok:
                raise RuntimeError(f"{result.job.name} failed: {result.error}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--agent", default="cpo")
    parser.add_argument("--config", default="debug")
    parser.add_argument("--env", default="saferl_PointHazard-v0")
    parser.add_argument("--total_steps", type=int, default=2000)
    args = parser.parse_args()

    import ray

    from saferl_tf.distributed.ray_executor import RayExecutor

    started = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray_start = time.perf_counter() - started
    walls: dict[str, list[float]] = {}
    bare_seconds: list[float] = []
    with tempfile.TemporaryDirectory() as temp:
        for repeat in range(args.repeats):
            bare_seconds += bare(args, Path(temp) / f"bare{repeat}")
            for slots in (1, 2):
                for name in ("local", "ray"):
                    root = Path(temp) / f"{name}{slots}-{repeat}"
                    if name == "local":
                        executor = LocalExecutor(root, workers=slots, max_retries=0)
                    else:
                        executor = RayExecutor(root, workers=slots, max_retries=0)
                    try:
                        walls.setdefault(f"{name}:{slots}", []).append(through(executor, args))
                    finally:
                        executor.close()
                    print(f"repeat {repeat} {name} {slots} slot(s): "
                          f"{walls[f'{name}:{slots}'][-1]:.1f} s", flush=True)  # fmt: skip
    ray.shutdown()
    run_mean = statistics.mean(bare_seconds)
    config = args.config or "defaults"
    print(f"\n{args.runs} runs of {args.agent} ({config}) on {args.env}, {args.total_steps} "
          f"steps; {args.repeats} repeats; Ray start-up {ray_start:.1f} s")  # fmt: skip
    print(f"bare run (plain child process): {run_mean:.2f} s "
          f"(min {min(bare_seconds):.2f}, max {max(bare_seconds):.2f})\n")  # fmt: skip
    print("| executor | slots | wall s (mean of repeats) | runs per hour | "
          "overhead per run at 1 slot, s |")  # fmt: skip
    print("| --- | ---: | ---: | ---: | ---: |")
    for key, values in walls.items():
        name, slots = key.split(":")
        wall = statistics.mean(values)
        overhead = f"{wall / args.runs - run_mean:.2f}" if slots == "1" else ""
        print(f"| {name} | {slots} | {wall:.1f} | {args.runs / wall * 3600:.0f} | {overhead} |")


if __name__ == "__main__":
    main()
