"""The driver's progress view of many jobs: counts and each running job's state.

A line whenever a job ends, and every ``every`` seconds a status block::

    runs: 3 pending, 2 running, 4 finished, 1 failed (10 in all)
      lambda/sgym_SafetyPointGoal1-v0/3   step 12000   return 4.31
      cmbpo/saferl_ConstrainedPendulum-v0/0   step 800   return -
"""

from __future__ import annotations

import time

from saferl_tf.distributed.jobs import JobResult


class ProgressBoard:
    def __init__(self, out, total: int, what: str = "runs", every: float = 30.0):
        self.out, self.total, self.what, self.every = out, total, what, every
        self.done = self.failed = 0
        self._shown = time.monotonic()

    def count_finished(self, done: int, failed: int) -> None:
        """Jobs finished before this driver started (a resumed study or sweep)."""
        self.done, self.failed = done, failed

    def finished(self, result: JobResult) -> None:
        if result.ok:
            self.done += 1
        else:
            self.failed += 1

    def status(self, executor, pending: int) -> str:
        running = executor.running()
        lines = [f"{self.what}: {pending} pending, {len(running)} running, {self.done} finished, "
                 f"{self.failed} failed ({self.total} in all)"]  # fmt: skip
        for name, progress in sorted(executor.progress().items() if running else []):
            step = "-" if progress.step is None else str(progress.step)
            value = "-" if progress.episode_return is None else f"{progress.episode_return:.4g}"
            lines.append(f"  {name}   step {step}   return {value}")
        return "\n".join(lines)

    def show(self, executor, pending: int, force: bool = False) -> None:
        """Prints the status block when ``every`` seconds have passed (or ``force``)."""
        if force or time.monotonic() - self._shown >= self.every:
            self._shown = time.monotonic()
            print(self.status(executor, pending), file=self.out, flush=True)
