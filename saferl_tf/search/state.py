"""A search's state on disk as JSON plus a ``.npz`` of arrays; nothing is unpickled.

    save(run_dir, state)     # state: nested dicts / lists of JSON values and arrays
    state = load(run_dir)    # the same tree, or None when the folder holds none

``search_state.json`` holds the tree with every array replaced by a reference
``{"__ndarray__": key}``, a format name and ``version``, and the name and
SHA-256 of the arrays file, ``search_state-<hash>.npz`` (read with
``allow_pickle=False``, so object arrays are refused). The arrays file is
named by its hash and written before the JSON file, which is replaced
atomically; older arrays files are removed only after, so a run killed at any
point leaves a consistent pair. Results folders come from other people:
loading such a file runs no code from it.

A file that cannot be used (another version, corrupt, not a search state) is a
one-line ``CheckpointError`` (exit 2 from the launchers) that names the file
and what to do; it is never rewritten. A ``search_state.pkl`` written by
earlier versions is refused without being opened, as unpickling it could run
any code.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from saferl_tf import files
from saferl_tf.errors import CheckpointError

FORMAT = "saferl_tf.search_state"
VERSION = 1
STATE_FILE = "search_state.json"
OLD_PICKLE_FILE = "search_state.pkl"
_ARRAY = "__ndarray__"
_ARRAYS_FILE = re.compile(r"search_state-[0-9a-f]{16}\.npz")
_WHAT_TO_DO = (
    "it was left as it is: start a new search with another --run_dir, or move it "
    "and the search_state-*.npz beside it away to restart this one from evaluation 0"
)


def _encode(value: Any, arrays: dict[str, np.ndarray], path: str) -> Any:
    if isinstance(value, np.ndarray):
        if value.dtype.hasobject:
            raise TypeError(f"search state {path}: object arrays cannot be stored")
        arrays[path] = value
        return {_ARRAY: path}
    if isinstance(value, dict):
        if _ARRAY in value or not all(isinstance(key, str) for key in value):
            raise TypeError(f"search state {path}: keys must be strings other than {_ARRAY}")
        return {key: _encode(item, arrays, f"{path}.{key}") for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_encode(item, arrays, f"{path}.{index}") for index, item in enumerate(value)]
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"search state {path}: cannot store a {type(value).__name__}")


def _decode(value: Any, arrays: dict[str, np.ndarray]) -> Any:
    if isinstance(value, dict):
        if set(value) == {_ARRAY}:
            return arrays[value[_ARRAY]]
        return {key: _decode(item, arrays) for key, item in value.items()}
    if isinstance(value, list):
        return [_decode(item, arrays) for item in value]
    return value


def _write_atomic(path: Path, data: bytes) -> None:
    files.write_atomically(path, data, files.RERUN_ADVICE)


def save(run_dir: str | Path, state: dict) -> None:
    """Writes ``state`` (see the module docstring) to ``run_dir``."""
    run_dir = Path(run_dir)
    arrays: dict[str, np.ndarray] = {}
    tree = _encode(state, arrays, "state")
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    data = buffer.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    arrays_name = f"search_state-{digest[:16]}.npz"
    _write_atomic(run_dir / arrays_name, data)
    document = {"format": FORMAT, "version": VERSION,
                "arrays": {"file": arrays_name, "sha256": digest}, "state": tree}  # fmt: skip
    _write_atomic(run_dir / STATE_FILE, (json.dumps(document, indent=1) + "\n").encode())
    for stale in run_dir.glob("search_state-*.npz"):
        if stale.name != arrays_name:
            stale.unlink(missing_ok=True)


def unusable(path: Path, reason: str) -> CheckpointError:
    """The one-line error for a state file that cannot be resumed."""
    reason = " ".join(str(reason).split())  # One line, whatever the cause said.
    return CheckpointError(f"{path} cannot be resumed: {reason}; {_WHAT_TO_DO}")


def refuse_old_pickle(run_dir: str | Path) -> None:
    """Raises when ``run_dir`` holds an earlier version's pickled state (never opened)."""
    path = Path(run_dir) / OLD_PICKLE_FILE
    if path.exists():
        raise CheckpointError(
            f"{path} is a search state saved with pickle by an earlier saferl_tf; it is not "
            "loaded, since unpickling a file can run any code in it: start a new search with "
            "another --run_dir (or delete that file to restart this one from evaluation 0)"
        )


def load(run_dir: str | Path) -> dict | None:
    """The state saved in ``run_dir``, or None when there is none; see the module docstring."""
    run_dir = Path(run_dir)
    refuse_old_pickle(run_dir)
    path = run_dir / STATE_FILE
    if not path.exists():
        return None
    try:
        document = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise unusable(path, f"it is not readable JSON ({error})") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise unusable(path, f"it is not a {FORMAT} file")
    if document.get("version") != VERSION:
        raise unusable(
            path, f"it has format version {document.get('version')!r} and this saferl_tf "
            f"reads version {VERSION} only (resume it with the saferl_tf that wrote it)",
        )  # fmt: skip
    try:
        arrays_name, digest = document["arrays"]["file"], document["arrays"]["sha256"]
        tree = document["state"]
    except (KeyError, TypeError):
        raise unusable(path, "its arrays entry or state is missing") from None
    # Only a plain name of the expected form: the file must not point elsewhere.
    if not isinstance(arrays_name, str) or not _ARRAYS_FILE.fullmatch(arrays_name):
        raise unusable(path, f"its arrays file name {arrays_name!r} is not valid")
    try:
        data = (run_dir / arrays_name).read_bytes()
    except OSError as error:
        raise unusable(path, f"its arrays file cannot be read ({error})") from None
    if hashlib.sha256(data).hexdigest() != digest:
        raise unusable(path, f"{arrays_name} does not match the checksum in it")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
        return _decode(tree, arrays)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as error:
        raise unusable(path, f"its arrays cannot be read ({error})") from None
