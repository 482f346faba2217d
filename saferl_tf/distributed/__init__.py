"""Running many training runs or tuner trials: on this machine or on Ray.

An executor runs ``Job``s (a program writing one run folder) and reports
their results and progress; the tuner, ``saferl-sweep`` and ``saferl-train
--seeds`` drive one::

    executor = make_executor("local", root="results", workers=2)   # or "ray"
    while queue or executor.running():
        while queue and executor.free_slots() > 0:
            executor.submit(queue.pop(0))
        for result in executor.wait(timeout=1.0):   # JobResult: ok, returncode, error
            ...
    executor.close()      # running jobs are stopped and checkpoint

``LocalExecutor`` (``local.py``) starts child processes; ``RayExecutor``
(``ray_executor.py``, the optional ``distributed`` extra) starts Ray tasks and
brings run folders back to the driver with or without a shared file system.
"""

from __future__ import annotations

from saferl_tf.distributed.jobs import Job, JobResult, RunProgress, read_progress
from saferl_tf.distributed.local import LocalExecutor
from saferl_tf.distributed.progress import ProgressBoard

EXECUTORS = ("local", "ray")


def make_executor(name: str, root, workers: int | None = None, max_retries: int = 3,
                  **ray_options):  # fmt: skip
    """The executor ``name`` (local, ray) for run folders under ``root``.
    ``ray_options``: RayExecutor's address, cpus, gpus, storage, init_kwargs."""
    from saferl_tf.errors import ConfigError

    if name == "local":
        return LocalExecutor(root, workers or 1, max_retries)
    if name == "ray":
        from saferl_tf.distributed.ray_executor import RayExecutor

        return RayExecutor(root, workers=workers, max_retries=max_retries, **ray_options)
    raise ConfigError(f"unknown executor {name!r}; accepted: {', '.join(EXECUTORS)}")


__all__ = ["EXECUTORS", "Job", "JobResult", "LocalExecutor", "ProgressBoard", "RunProgress",
           "make_executor", "read_progress"]  # fmt: skip
