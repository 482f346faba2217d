"""Writing figures without losing any: output folders and atomic saves.

``save_figure(figure, path)`` draws into a temporary file beside ``path`` and
renames it over ``path`` only once it is complete, so a full disk or a killed
process never leaves a truncated figure or clobbers the previous one. Problems
the user can fix (no permission, no space, a file where a folder should be) raise
``UserError`` naming the path, which the plot tools print as one ``error:`` line
with exit code 2.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from saferl_tf.errors import UserError

if TYPE_CHECKING:
    from matplotlib.figure import Figure


class OutputError(UserError):
    """An output folder or file that cannot be written."""


def _reason(error: OSError) -> str:
    return error.strerror or str(error)


def make_output_dir(path: str | Path) -> Path:
    """Creates the folder ``path`` (and its parents) unless it exists; returns it.

    Raises ``OutputError`` when it cannot be created or is not a folder.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"cannot use {path} as the output folder: it is a file")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"cannot create the output folder {path}: {_reason(error)}") from None
    return path


def save_figure(figure: Figure, path: str | Path, **savefig_kwargs) -> Path:
    """``figure.savefig`` into ``path`` atomically; the format is ``path``'s suffix.

    The temporary file is created with the usual permissions (``0o666`` less the
    umask), or an existing figure's, and removed again when anything fails. Raises
    ``OutputError`` for an ``OSError`` while writing, naming ``path``.
    """
    path = Path(path)
    # Write through a symbolic link to its target, as savefig(path) would, rather than
    # replacing the link with a file.
    target = Path(os.path.realpath(path))
    temporary = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    try:
        existing = target.stat() if target.is_file() else None
        # O_EXCL: never write into someone else's file; 0o666 is masked by the umask,
        # unlike tempfile's fixed 0o600.
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            with os.fdopen(descriptor, "wb") as stream:
                if existing is not None:  # A replaced figure keeps its permissions.
                    os.fchmod(stream.fileno(), stat.S_IMODE(existing.st_mode))
                figure.savefig(stream, format=target.suffix[1:] or None, **savefig_kwargs)
                stream.flush()
                os.fsync(stream.fileno())  # A full disk shows here, not after the rename.
            os.replace(temporary, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
    except OSError as error:
        raise OutputError(f"cannot write {path}: {_reason(error)}") from None
    return path
