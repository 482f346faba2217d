"""The Ray executor: each job a Ray task (one process) with declared resources.

Connects to a cluster (``address``: ``auto``, ``HOST:PORT``) or, without an
address, starts a local Ray instance. A task runs the job's program as a child
process, so the command is the local executor's. Where the run folder lives:

- ``storage``: a folder every node mounts at the same path (a shared file
  system). Jobs run in ``<storage>/<folder>`` directly.
- no storage: a job runs in a folder of the worker's own, and a ``Collector``
  actor pinned to the driver's node receives the folder's changes at every new
  checkpoint and at the end, writing them into the driver's tree (through
  Ray's object store, so no file system is shared). A retried job starts from
  the driver's copy, so it resumes from its last synced checkpoint on any node.

A job whose process is stopped from outside (SIGKILL of the job's process or
of the Ray worker, a lost node) is retried up to ``max_retries`` times; one
that fails on its own (an error exit code) is returned as failed, not retried.
Ray is an optional extra: ``pip install -e .[distributed]``.
"""

from __future__ import annotations

import contextlib
import math
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from saferl_tf.distributed import sync
from saferl_tf.distributed.jobs import (
    Job,
    JobResult,
    RunProgress,
    last_error_line,
    read_progress,
    was_lost,
)
from saferl_tf.distributed.local import start_process, stop_process
from saferl_tf.errors import ConfigError, UserError

INSTALL_HINT = "pip install -e .[distributed] (or pip install 'saferl_tf[distributed]')"
SYNC_SECONDS = 2.0  # How often a task looks for a new checkpoint and reports progress.


def import_ray():
    """``ray``, or a one-line UserError naming the extra that installs it."""
    try:
        import ray
    except ImportError:
        raise UserError(f"--executor=ray needs Ray, an optional extra: {INSTALL_HINT}") from None
    return ray


class RunLost(Exception):
    """The job's process was stopped from outside: Ray retries the task."""


class Collector:
    """On the driver's node: receives run folders' changes and progress reports."""

    def __init__(self, root: str):
        self.root = Path(root)
        self.reports: dict[str, tuple[int | None, float | None]] = {}
        self.attempts: dict[str, int] = {}

    def started(self, name: str) -> int:
        self.attempts[name] = self.attempts.get(name, 0) + 1
        return self.attempts[name]

    def pull(self, folder: str) -> bytes:
        return sync.pack_folder(self.root / folder)

    def push(self, folder: str, payload: bytes, deleted: list[str]) -> int:
        return sync.unpack(payload, self.root / folder, deleted)

    def report(self, name: str, step: int | None, episode_return: float | None) -> None:
        self.reports[name] = (step, episode_return)

    def progress(self) -> tuple[dict, dict]:
        return self.reports, self.attempts


def _newest_checkpoint(run_dir: Path) -> int:
    """The newest checkpoint's step by its index file (TensorFlow renames a
    checkpoint's files into place, so an index file means a whole one)."""
    steps = [int(path.name[5:-6]) for path in (run_dir / "checkpoints").glob("ckpt-*.index")
             if path.name[5:-6].isdigit()]  # fmt: skip
    return max(steps, default=-1)


def _wait_for_lock(run_dir: Path, seconds: float = 300.0) -> None:
    """Waits while another process (a stopped attempt still checkpointing)
    holds the run folder's lock."""
    import fcntl

    lock = run_dir / ".lock"
    deadline = time.monotonic() + seconds
    while lock.exists() and time.monotonic() < deadline:
        with open(lock, "a+") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return  # Free (closing releases it again).
            except BlockingIOError:
                pass
        time.sleep(1.0)


def run_job(job: Job, storage: str | None, collector) -> tuple[int, str | None, float]:
    """The body of a job's Ray task: (exit code, error line, seconds). Raises
    RunLost when the process was stopped from outside, so that Ray retries."""
    import ray

    started = time.monotonic()
    if collector is not None:
        ray.get(collector.started.remote(job.name))
    if storage:
        run_dir, scratch = Path(storage) / job.folder, None
        run_dir.mkdir(parents=True, exist_ok=True)
        _wait_for_lock(run_dir)
    else:
        scratch = Path(tempfile.gettempdir()) / "saferl_tf_ray" / uuid.uuid4().hex
        run_dir = scratch / job.folder
        sync.unpack(ray.get(collector.pull.remote(job.folder)), run_dir)
    folder_sync = None if storage else sync.FolderSync(run_dir)

    def send() -> None:
        if folder_sync is None:
            return
        changes = folder_sync.changes()
        if changes is not None:
            ray.get(collector.push.remote(job.folder, *changes))
            folder_sync.commit()

    process, logs = start_process(job, run_dir)
    sent_checkpoint = _newest_checkpoint(run_dir)
    try:
        while process.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=SYNC_SECONDS)  # Returns at once when the job ends.
            if process.poll() is not None:
                break
            if collector is not None:
                progress = read_progress(run_dir)
                collector.report.remote(job.name, progress.step, progress.episode_return)
            newest = _newest_checkpoint(run_dir)
            if newest != sent_checkpoint:
                send()
                sent_checkpoint = newest
    finally:  # Also on cancellation (KeyboardInterrupt): checkpoint, then send.
        stop_process(process)
        for log in logs:
            log.close()
        with contextlib.suppress(Exception):
            send()
    returncode = process.returncode
    error = None if returncode == 0 else last_error_line(run_dir)
    if scratch is not None:
        shutil.rmtree(scratch, ignore_errors=True)
    if returncode != 0 and was_lost(returncode):
        raise RunLost(f"{job.name}: exit {returncode}: {error}")
    return returncode, error, time.monotonic() - started


class RayExecutor:
    """Jobs as Ray tasks (see the module). ``workers``: jobs at once (default:
    as many as the cluster's CPUs and GPUs fit at ``cpus``/``gpus`` each)."""

    name = "ray"

    def __init__(self, root: str | Path, address: str | None = None, workers: int | None = None,
                 cpus: float = 1.0, gpus: float = 0.0, max_retries: int = 3,
                 storage: str | None = None, init_kwargs: dict | None = None):  # fmt: skip
        ray = import_ray()
        if cpus <= 0 or gpus < 0:
            raise ConfigError(f"--trial_cpus must be > 0 and --trial_gpus >= 0, got {cpus}, {gpus}")
        if storage and "://" in storage:
            raise ConfigError(
                f"--storage={storage}: give a folder every node mounts at the same path (mount a "
                "bucket with e.g. mountpoint-s3 or gcsfuse); Ray core has no storage API for "
                "tasks, and without --storage run folders come back through Ray's object store"
            )
        self.root = Path(root).resolve()
        self.storage = str(Path(storage).resolve()) if storage else None
        self._started_ray = not ray.is_initialized()
        if self._started_ray:
            try:
                ray.init(address=address, log_to_driver=False, include_dashboard=False,
                         **(init_kwargs or {}))  # fmt: skip
            except ConnectionError as error:
                raise UserError(f"cannot connect to Ray at --address={address} ({error})") from None
        resources = ray.cluster_resources()
        fit = math.floor(resources.get("CPU", 0.0) / cpus + 1e-9)
        if gpus > 0:
            fit = min(fit, math.floor(resources.get("GPU", 0.0) / gpus + 1e-9))
        if fit < 1:
            self.close()
            raise ConfigError(
                f"the Ray cluster ({resources.get('CPU', 0):g} CPUs, {resources.get('GPU', 0):g} "
                f"GPUs) cannot fit one job of --trial_cpus={cpus:g} --trial_gpus={gpus:g}"
            )
        self.slots = workers or fit
        self.max_retries = max_retries
        self.collector = None
        if self.storage is None:
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            here = ray.get_runtime_context().get_node_id()
            self.collector = (
                ray.remote(Collector)
                .options(
                    num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(here, False)
                )
                .remote(str(self.root))
            )
        options = dict(num_cpus=cpus, num_gpus=gpus, max_retries=max_retries,
                       retry_exceptions=[RunLost])  # fmt: skip
        if 0 < gpus < 1:  # Runs sharing a GPU: TensorFlow must not take all its memory.
            options["runtime_env"] = {"env_vars": {"TF_FORCE_GPU_ALLOW_GROWTH": "true"}}
        self._task = ray.remote(run_job).options(**options)
        self._running: dict = {}  # ObjectRef -> (job, started)
        self._ray = ray

    def free_slots(self) -> int:
        return self.slots - len(self._running)

    def running(self) -> list[str]:
        return [job.name for job, _ in self._running.values()]

    def submit(self, job: Job) -> None:
        if job.name in self.running():
            raise ValueError(f"job {job.name} is already running")
        if self.storage:
            job.write_files(Path(self.storage) / job.folder)
        job.write_files(self.root / job.folder)  # The driver's copy: a retry starts from it.
        self._running[self._task.remote(job, self.storage, self.collector)] = (
            job,
            time.monotonic(),
        )

    def wait(self, timeout: float = 1.0) -> list[JobResult]:
        if not self._running:
            return []
        ready, _ = self._ray.wait(list(self._running), num_returns=len(self._running),
                                  timeout=timeout)  # fmt: skip
        results = []
        attempts = self._attempts()
        for ref in ready:
            job, started = self._running.pop(ref)
            tries = attempts.get(job.name, 1)
            try:
                returncode, error, _ = self._ray.get(ref)
            except self._ray.exceptions.RayError as failure:
                returncode, error = self._failure(failure, tries)
            if self.storage and returncode == 0:
                self._copy_back(job)
            results.append(JobResult(job, returncode, time.monotonic() - started, tries, error))
        return results

    def _failure(self, failure, tries: int) -> tuple[int, str]:
        """(exit code, error) of a task that raised: lost (retries exhausted) or its own bug."""
        cause = getattr(failure, "cause", None)
        lines = str(cause or failure).strip().splitlines()
        message = lines[-1][:300] if lines else type(failure).__name__
        lost = isinstance(cause, RunLost) or isinstance(
            failure, (self._ray.exceptions.WorkerCrashedError, self._ray.exceptions.NodeDiedError,
                      self._ray.exceptions.TaskCancelledError))  # fmt: skip
        if lost:
            return -9, f"stopped from outside {tries} times (retries exhausted): {message}"
        return 1, f"the task failed: {message}"

    def _copy_back(self, job: Job) -> None:
        source, target = Path(self.storage) / job.folder, self.root / job.folder
        if source.resolve() != target.resolve():
            shutil.copytree(source, target, dirs_exist_ok=True)

    def _attempts(self) -> dict[str, int]:
        if self.collector is None:
            return {}
        return self._ray.get(self.collector.progress.remote())[1]

    def progress(self) -> dict[str, RunProgress]:
        names = self.running()
        if self.collector is None:
            return {n: read_progress(Path(self.storage) / j.folder)
                    for n, j in ((j.name, j) for j, _ in self._running.values())}  # fmt: skip
        reports = self._ray.get(self.collector.progress.remote())[0]
        return {name: RunProgress(*reports.get(name, (None, None))) for name in names}

    def close(self) -> None:
        """Cancels the running jobs (each checkpoints and sends its folder), then
        shuts down the Ray instance this executor started."""
        ray = self._ray if hasattr(self, "_ray") else import_ray()
        refs = list(getattr(self, "_running", {}))
        for ref in refs:
            ray.cancel(ref)
        if refs:
            ray.wait(refs, num_returns=len(refs), timeout=180)
        self._running = {}
        if self._started_ray and ray.is_initialized():
            ray.shutdown()
