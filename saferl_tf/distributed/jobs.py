"""Jobs, their results and their progress: what every executor shares.

A ``Job`` is one program run that writes one folder: a training run
(``saferl_tf.cli.train``) or a tuner trial. Its command names the folder as
``{run_dir}``, which the executor replaces by wherever the job runs (the
driver's folder, a shared storage folder, or a worker's own copy), so the same
job runs unchanged on this machine and on a Ray cluster. Running a job again
in a folder that holds its checkpoint resumes it.
"""

from __future__ import annotations

import dataclasses
import json
import signal
import sys
from pathlib import Path

from saferl_tf.files import METRICS_FILE

RUN_DIR = "{run_dir}"
LOGS = ("stdout.log", "stderr.log")
# Exit codes of a process stopped from outside (a signal, or the training
# loop's own exit after SIGTERM/SIGINT, 128 + signal): a lost worker, retried.
# Any other non-zero code is the job's own failure (bad config, NaN), not retried.
_LOST_CODES = {128 + signal.SIGTERM, 128 + signal.SIGINT, 128 + signal.SIGKILL}


@dataclasses.dataclass(frozen=True)
class Job:
    """One program run into one folder.

    ``name``: unique within a study or sweep, shown in progress. ``folder``:
    the run folder relative to the executor's root (``<agent>/<env>/<seed>``,
    ``trial_3``). ``module_args``: ``python -m`` arguments, ``{run_dir}``
    standing for the folder. ``files``: (name, text) pairs written into the
    folder before the program starts (a trial's parameters).
    """

    name: str
    folder: str
    module_args: tuple[str, ...]
    files: tuple[tuple[str, str], ...] = ()

    def command(self, run_dir: str | Path) -> list[str]:
        """The command line for a run in ``run_dir``, with this interpreter."""
        return [sys.executable, "-m"] + [a.replace(RUN_DIR, str(run_dir)) for a in self.module_args]

    def write_files(self, run_dir: Path) -> None:
        from saferl_tf import files

        files.make_folder(run_dir, "free disk space or fix the permissions, then rerun")
        for name, text in self.files:
            files.write_atomically(run_dir / name, text, files.RERUN_ADVICE)


@dataclasses.dataclass
class JobResult:
    """How a job ended. ``returncode`` 0: done; ``lost``: stopped from outside
    more often than ``max_retries`` allowed; otherwise failed on its own."""

    job: Job
    returncode: int
    seconds: float
    attempts: int = 1
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def was_lost(returncode: int) -> bool:
    """Whether a process ending with ``returncode`` was stopped from outside
    (killed by a signal, or its loop's clean exit after SIGTERM/SIGINT)."""
    return returncode < 0 or returncode in _LOST_CODES


def last_error_line(run_dir: Path) -> str:
    """The last error-looking line of the job's stderr.log (or its last line)."""
    path = Path(run_dir) / LOGS[1]
    try:
        lines = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "no output"
    errors = [line for line in lines if line.startswith(("error:", "Error", "Traceback"))]
    tail = [line for line in lines if line.strip()]
    return (errors or tail or ["no output"])[-1][:300]


@dataclasses.dataclass
class RunProgress:
    """The newest step and episode return a running job has logged (None: none yet)."""

    step: int | None = None
    episode_return: float | None = None


def read_progress(run_dir: Path, tail_bytes: int = 65_536) -> RunProgress:
    """Progress from the end of ``metrics.jsonl`` (reads at most ``tail_bytes``)."""
    path = Path(run_dir) / METRICS_FILE
    progress = RunProgress()
    try:
        with open(path, "rb") as file:
            file.seek(0, 2)
            size = file.tell()
            file.seek(max(size - tail_bytes, 0))
            lines = file.read().decode(errors="replace").splitlines()
    except OSError:
        return progress
    for line in reversed(lines):
        try:
            record = json.loads(line)
        except ValueError:
            continue  # A line cut by the tail window or still being written.
        if progress.step is None and "step" in record:
            progress.step = int(record["step"])
        for key in ("train/episode_return", "search/value"):
            if progress.episode_return is None and key in record:
                progress.episode_return = float(record[key])
        if progress.step is not None and progress.episode_return is not None:
            break
    return progress
