"""Writing results safely: folders and whole-or-nothing files, with one-line errors.

Every file a run or study depends on (configs, summaries, study and searcher
state) is written with ``write_atomically``: a temporary file beside the
target, flushed to disk, then renamed over it, so a kill or a full disk
leaves the previous version whole. Failures become ``UserError``s that name
the path, which the programs print as one ``error:`` line (exit code 2).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from saferl_tf.errors import UserError

# A run folder's scalars, one JSON object per line (written by the training
# logger, read by the plots and by the executors' progress views).
METRICS_FILE = "metrics.jsonl"

# What to do after a failed write of a run's own files (config, summary, state).
RERUN_ADVICE = "free disk space or fix the permissions, then rerun"


def reason(error: OSError) -> str:
    """The OS's words for ``error`` (its strerror), for one-line messages."""
    return error.strerror or str(error)


def make_folder(directory: str | Path, advice: str) -> Path:
    """``mkdir -p directory``; a failure is a UserError naming it, then ``advice``."""
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(
            f"cannot create the folder {directory} ({reason(error)}); {advice}"
        ) from None
    return directory


def write_atomically(path: str | Path, data: str | bytes, advice: str) -> None:
    """Writes ``data`` to ``path`` whole or not at all; a failure is a UserError
    naming ``path``, saying whether a previous version is kept, then ``advice``."""
    path = Path(path)
    temporary = path.with_name(path.name + ".tmp")
    try:
        with open(temporary, "wb" if isinstance(data, bytes) else "w") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())  # On disk before the rename makes it the file.
        os.replace(temporary, path)
    except OSError as error:
        with contextlib.suppress(OSError):  # The error below is the one to report.
            temporary.unlink(missing_ok=True)
        kept = "the previous version is kept" if path.exists() else "nothing was written"
        raise UserError(f"cannot write {path} ({reason(error)}; {kept}); {advice}") from None


@contextlib.contextmanager
def exclusive_lock(directory: str | Path, what: str, advice: str):
    """Holds an exclusive lock on ``directory`` (a ``.lock`` file in it) for the
    block, so that two processes never write one run or study at once. The OS
    releases it when the process ends, however it ends: no stale locks. A held
    lock is a UserError naming ``what`` and ``directory``, then ``advice``."""
    import fcntl  # POSIX only, as the package.

    path = Path(directory) / ".lock"
    try:
        handle = open(path, "a+")  # noqa: SIM115 (held open for the block)
    except OSError as error:
        raise UserError(f"cannot open the lock file {path} ({reason(error)}); {advice}") from None
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(
                f"another process is already running the {what} in {directory}; "
                f"wait for it to finish, or {advice}"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")  # Who holds it, for a person looking.
        handle.flush()
        yield
    finally:
        handle.close()  # Closing releases the lock.
