"""Sweeps: training runs over agents x environments x seeds through an executor.

``run_sweep(runs, executor)`` turns each ``RunSettings`` into a job running
``saferl_tf.cli.train`` in ``<results_dir>/<agent>/<env>/<seed>/`` (the tree
``saferl-plot`` reads), skips runs whose ``summary.json`` says they reached
their steps, keeps the executor's slots full and prints progress. Killed and
started again with the same command, a sweep repeats no finished run and
resumes the others from their checkpoints; runs that failed are tried again.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

from saferl_tf.distributed.jobs import RUN_DIR, Job, JobResult
from saferl_tf.distributed.progress import ProgressBoard

_NUMBERS = ("total_steps", "eval_every", "eval_episodes", "checkpoint_every", "log_every",
            "num_envs", "episode_length", "distraction_dimensions", "action_repeat",
            "eval_video_every", "eval_video_size")  # fmt: skip


def run_arguments(settings) -> list[str]:
    """saferl-train flags that reproduce ``settings`` (a ``RunSettings``) but for
    the agent, environment, seed and run folder."""
    args = [f"--config={settings.config}"] if settings.config else []
    args += [f"--config.{key}={value}" for key, value in settings.overrides.items()]
    args += [f"--{name}={getattr(settings, name)}" for name in _NUMBERS
             if getattr(settings, name) is not None]  # fmt: skip
    if settings.observation is not None:
        args.append(f"--observation={settings.observation}")
    for name in ("safety", "jit"):
        value = getattr(settings, name)
        if value is not None:
            args.append(f"--{name}" if value else f"--no{name}")
    return args + ["--noprogress"]


def run_folder(settings) -> str:
    return f"{settings.agent}/{settings.env}/{settings.seed}"


def training_job(settings, imports=()) -> Job:
    """The job that trains (or resumes) ``settings`` in its results-tree folder."""
    folder = run_folder(settings)
    args = ["saferl_tf.cli.train", f"--agent={settings.agent}", f"--env={settings.env}",
            f"--seed={settings.seed}", f"--run_dir={RUN_DIR}"]  # fmt: skip
    args += run_arguments(settings)
    if imports:
        args.append(f"--imports={','.join(imports)}")
    return Job(name=folder, folder=folder, module_args=tuple(args))


def reached(run_dir: Path, total_steps: int) -> bool:
    """Whether the run in ``run_dir`` finished ``total_steps`` (its summary says so)."""
    try:
        summary = json.loads((run_dir / "summary.json").read_text())
        return int(summary["env_steps"]) >= total_steps
    except (OSError, ValueError, KeyError, TypeError):
        return False


def run_sweep(runs, executor, out=sys.stderr, imports=(), every: float = 30.0) -> list[JobResult]:
    """Trains ``runs`` (``RunSettings`` with complete schedules, one results
    tree) through ``executor``; returns the results of the runs it ran."""
    pending, finished = [], 0
    for settings in runs:
        if reached(Path(settings.results_dir) / run_folder(settings), settings.total_steps):
            finished += 1
        else:
            pending.append(training_job(settings, imports))
    board = ProgressBoard(out, total=len(runs), what="runs", every=every)
    board.count_finished(finished, 0)
    if finished:
        print(f"saferl_tf: {finished} of {len(runs)} runs already finished; skipped", file=out)
    results = []
    try:
        while pending or executor.running():
            while pending and executor.free_slots() > 0:
                job = pending.pop(0)
                executor.submit(job)
                print(f"saferl_tf: started {job.name}", file=out, flush=True)
            for result in executor.wait(1.0):
                board.finished(result)
                results.append(result)
                outcome = "finished" if result.ok else f"failed ({result.error})"
                print(f"saferl_tf: {result.job.name} {outcome} after {result.seconds:.0f} s",
                      file=out, flush=True)  # fmt: skip
            board.show(executor, len(pending))
        board.show(executor, 0, force=True)
    finally:
        executor.close()
    return results


def with_seeds(settings, seeds):
    return [dataclasses.replace(settings, seed=seed) for seed in seeds]
