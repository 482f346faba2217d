"""The local executor: each job a child process on this machine.

Up to ``workers`` jobs run at once, each in ``<root>/<folder>`` with its
output appended to ``stdout.log`` and ``stderr.log`` there. Children get
SIGTERM when the driver dies (Linux), so a killed driver leaves no orphan
running: a training run then checkpoints and is resumed with the driver. A
child stopped from outside (a signal) is started again in the same folder,
resuming from its checkpoint, up to ``max_retries`` times.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from saferl_tf.distributed.jobs import (
    LOGS,
    Job,
    JobResult,
    RunProgress,
    last_error_line,
    read_progress,
    was_lost,
)
from saferl_tf.errors import UserError


def die_with_parent() -> None:
    """In a child: ask Linux for SIGTERM when the parent process dies."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def start_process(job: Job, run_dir: Path) -> tuple[subprocess.Popen, list]:
    """Starts ``job`` in ``run_dir``; returns the process and its open log files."""
    job.write_files(run_dir)
    logs = []
    try:
        logs = [open(run_dir / name, "ab") for name in LOGS]  # noqa: SIM115
        process = subprocess.Popen(
            job.command(run_dir),
            stdout=logs[0],
            stderr=logs[1],
            stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent if sys.platform.startswith("linux") else None,
        )
    except OSError as error:
        for log in logs:
            log.close()
        raise UserError(
            f"cannot start {job.name} in {run_dir} ({error.strerror or error}); free disk "
            "space or fix the permissions, then run the same command again to resume"
        ) from None
    return process, logs


def stop_process(process: subprocess.Popen, grace_seconds: float = 120.0) -> None:
    """SIGTERM (a training run checkpoints), then SIGKILL after ``grace_seconds``."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=grace_seconds)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class _Running:
    def __init__(self, job: Job, run_dir: Path, attempts: int, started: float):
        self.job, self.run_dir, self.attempts, self.started = job, run_dir, attempts, started
        self.process, self.logs = start_process(job, run_dir)

    def close_logs(self) -> None:
        for log in self.logs:
            log.close()


class LocalExecutor:
    """Jobs as child processes of this one, ``workers`` at a time (see the module)."""

    name = "local"

    def __init__(self, root: str | Path, workers: int = 1, max_retries: int = 3):
        if workers < 1:
            raise UserError(f"--workers must be a positive integer, got {workers}")
        self.root = Path(root)
        self.slots = workers
        self.max_retries = max_retries
        self._running: dict[str, _Running] = {}

    def free_slots(self) -> int:
        return self.slots - len(self._running)

    def running(self) -> list[str]:
        return list(self._running)

    def submit(self, job: Job) -> None:
        if job.name in self._running:
            raise ValueError(f"job {job.name} is already running")
        self._running[job.name] = _Running(job, self.root / job.folder, 1, time.monotonic())

    def wait(self, timeout: float = 1.0) -> list[JobResult]:
        """Results of the jobs that ended; waits up to ``timeout`` s for one."""
        deadline = time.monotonic() + timeout
        while True:
            results = self._collect()
            if results or time.monotonic() >= deadline or not self._running:
                return results
            time.sleep(min(0.2, max(deadline - time.monotonic(), 0.0)))

    def _collect(self) -> list[JobResult]:
        results = []
        for name, item in list(self._running.items()):
            returncode = item.process.poll()
            if returncode is None:
                continue
            item.close_logs()
            if returncode != 0 and was_lost(returncode) and item.attempts <= self.max_retries:
                print(f"saferl_tf: {name} was stopped from outside (exit {returncode}); "
                      f"retry {item.attempts} of {self.max_retries} resumes it from its "
                      "checkpoint", file=sys.stderr, flush=True)  # fmt: skip
                self._running[name] = _Running(item.job, item.run_dir, item.attempts + 1,
                                               item.started)  # fmt: skip
                continue
            del self._running[name]
            error = None if returncode == 0 else last_error_line(item.run_dir)
            if returncode != 0 and was_lost(returncode):
                error = f"stopped from outside {item.attempts} times (retries exhausted): {error}"
            results.append(JobResult(item.job, returncode, time.monotonic() - item.started,
                                     item.attempts, error))  # fmt: skip
        return results

    def progress(self) -> dict[str, RunProgress]:
        return {name: read_progress(item.run_dir) for name, item in self._running.items()}

    def close(self) -> None:
        """Stops the running jobs (a training run checkpoints on SIGTERM)."""
        for item in self._running.values():
            if item.process.poll() is None:
                item.process.terminate()  # All at once, then wait for each.
        for item in self._running.values():
            stop_process(item.process)
            item.close_logs()
        self._running.clear()
