"""Copying a run folder between machines as it grows, through Ray's object store.

A worker without a shared file system runs a job in a folder of its own and
sends the driver what changed since the last send (``FolderSync.changes``) at
every new checkpoint and at the end; a retried job first receives the
driver's copy (``pack_folder`` / ``unpack``). Files are read whole before
packing, so a file being appended is sent as it was at that moment; a
``.jsonl`` file is cut after its last complete line. Each file lands on the
other side atomically (written beside, then renamed).
"""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

_SKIP_SUFFIXES = (".tmp",)  # Files being written atomically by their owner.


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """relative path -> (size, mtime in ns) of every file under ``folder``."""
    folder = Path(folder)
    found = {}
    for path in folder.rglob("*"):
        if path.name.endswith(_SKIP_SUFFIXES):
            continue
        try:
            stat = path.stat()
        except OSError:  # Removed while listing (a rotated checkpoint).
            continue
        if path.is_file():
            found[path.relative_to(folder).as_posix()] = (stat.st_size, stat.st_mtime_ns)
    return found


def _read(path: Path) -> bytes | None:
    try:
        data = path.read_bytes()
    except OSError:
        return None
    if path.suffix == ".jsonl":
        data = data[: data.rfind(b"\n") + 1]  # Only complete lines.
    return data


def pack(folder: Path, names) -> bytes:
    """The files ``names`` (relative to ``folder``) as an uncompressed tar."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name in sorted(names):
            data = _read(Path(folder) / name)
            if data is None:
                continue
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def pack_folder(folder: Path) -> bytes:
    folder = Path(folder)
    return pack(folder, snapshot(folder)) if folder.is_dir() else pack(folder, [])


def unpack(payload: bytes, folder: Path, deleted=()) -> int:
    """Writes the files of ``payload`` under ``folder`` (each atomically) and
    removes ``deleted``; returns the number of files written."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    root = folder.resolve()
    written = 0
    with tarfile.open(fileobj=io.BytesIO(payload), mode="r") as archive:
        for member in archive.getmembers():
            target = (folder / member.name).resolve()
            if not member.isfile() or root not in target.parents:
                continue  # Only plain files inside the folder.
            target.parent.mkdir(parents=True, exist_ok=True)
            temporary = target.with_name(target.name + ".sync-tmp")
            temporary.write_bytes(archive.extractfile(member).read())
            os.replace(temporary, target)
            written += 1
    for name in deleted:
        target = (folder / name).resolve()
        if root in target.parents:
            target.unlink(missing_ok=True)
    return written


class FolderSync:
    """What changed in ``folder`` since the last ``changes()`` that was ``commit``ted."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self._sent = snapshot(self.folder)
        self._pending = None

    def changes(self) -> tuple[bytes, list[str]] | None:
        """(tar of changed files, removed names), or None when nothing changed.
        Call ``commit()`` once the other side has them."""
        current = snapshot(self.folder)
        changed = [name for name, key in current.items() if self._sent.get(name) != key]
        deleted = [name for name in self._sent if name not in current]
        if not changed and not deleted:
            return None
        self._pending = current
        return pack(self.folder, changed), deleted

    def commit(self) -> None:
        if self._pending is not None:
            self._sent, self._pending = self._pending, None
