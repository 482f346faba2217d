"""Finding and restoring ``tf.train.Checkpoint`` files, with one-line errors.

A checkpoint folder holds ``<prefix>-<N>.index`` and ``.data-*`` files per
checkpoint and a small text index (``checkpoint``) that names the newest.
``tf.train.latest_checkpoint`` trusts that index alone: when it is lost or
damaged it answers None although every checkpoint is intact, and a run that
believed it would start again from step 0 over its own data. So the
candidates here come from the index *and* from the files on disk, newest
first, and ``restore_newest`` falls back to an older one when the newest does
not restore (a save cut short by a kill), moving the unusable one aside.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import tensorflow as tf

from saferl_tf.errors import CheckpointError

INDEX_FILE = "checkpoint"
UNUSABLE = "unusable"  # Checkpoints that did not restore when an older one did.


def _step(prefix: str) -> int:
    match = re.search(r"-(\d+)$", prefix)
    return int(match.group(1)) if match else -1


def _complete(prefix: Path) -> bool:
    """Whether the ``.index`` file and every data shard of ``prefix`` exist."""
    index = prefix.with_name(prefix.name + ".index")
    if not index.is_file():
        return False
    shards = list(prefix.parent.glob(prefix.name + ".data-*-of-*"))
    if not shards:
        return False
    total = int(shards[0].name.rsplit("-of-", 1)[1])
    return len(shards) == total


def read_index(directory: str | Path) -> list[str] | None:
    """The checkpoint prefixes the index file lists (oldest first), or None when
    it is missing or unreadable."""
    if not (Path(directory) / INDEX_FILE).exists():
        return None
    try:
        state = tf.train.get_checkpoint_state(str(directory))
    except Exception:  # A damaged text proto raises parse errors of several kinds.
        return None
    if state is None or not state.model_checkpoint_path:
        return None
    paths = list(state.all_model_checkpoint_paths) or [state.model_checkpoint_path]
    return [str(Path(directory) / Path(path).name) for path in paths]


def checkpoint_candidates(directory: str | Path, prefix: str = "ckpt") -> list[str]:
    """Every complete checkpoint in ``directory``, newest (highest step) first:
    those the index names and those found on disk, so that a lost or damaged
    index loses none."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = {
        str(directory / path.name[: -len(".index")]) for path in directory.glob(f"{prefix}-*.index")
    }
    found.update(read_index(directory) or [])
    complete = [path for path in found if _complete(Path(path))]
    return sorted(complete, key=_step, reverse=True)


def restore_checkpoint(checkpoint: tf.train.Checkpoint, path: str, partial: bool = False) -> None:
    """Restores ``path`` into ``checkpoint``; every object must find its values.

    ``partial``: values no object claims are expected (an agent restored only
    to act never builds its optimizers' slots), so TensorFlow does not warn
    about them. Raises CheckpointError naming the file when it is corrupt,
    truncated or was written by a different agent. The files are left untouched.
    """
    try:
        status = checkpoint.restore(path)
        if partial:
            status.expect_partial()
        status.assert_existing_objects_matched()
    except Exception as error:  # TF raises many kinds here (OpError, IndexError, ...).
        text = str(error).strip()
        reason = text.splitlines()[0] if text else type(error).__name__
        raise CheckpointError(
            f"cannot restore checkpoint {path}: {reason}; "
            "move the run folder aside or choose another --run_dir"
        ) from None


def restore_newest(checkpoint: tf.train.Checkpoint, directory: str | Path) -> str | None:
    """Restores the newest checkpoint of ``directory`` that restores; returns its
    path, or None when the folder holds none.

    When the newest fails (a save cut short), older ones are tried; the ones
    skipped move to ``unusable/`` and a warning names them. When the index file
    is missing, damaged or behind the files, it is rewritten to list what is on
    disk (a damaged one is kept as ``checkpoint.damaged``), so that the next
    save keeps counting from there.
    Raises CheckpointError when checkpoints exist but none restores.
    """
    directory = Path(directory)
    candidates = checkpoint_candidates(directory)
    if not candidates:
        return None
    failures = []
    for path in candidates:
        try:
            restore_checkpoint(checkpoint, path)
        except CheckpointError as error:
            failures.append(str(error))
            continue
        if failures:
            _set_aside(directory, candidates[: len(failures)])
            logging.warning(
                "restored %s; newer checkpoints did not restore and were moved to %s: %s",
                path, directory / UNUSABLE, "; ".join(failures),
            )  # fmt: skip
        _repair_index(directory, path, [p for p in candidates if _step(p) <= _step(path)])
        return path
    raise CheckpointError(
        f"none of the {len(candidates)} checkpoints in {directory} restores (newest: {failures[0]})"
    )


def _set_aside(directory: Path, prefixes: list[str]) -> None:
    """Moves unusable checkpoints out of the manager's sight, deleting nothing
    (a resumed run would otherwise write over them at the same step)."""
    target = directory / UNUSABLE
    target.mkdir(exist_ok=True)
    for prefix in prefixes:
        for path in directory.glob(Path(prefix).name + ".*"):
            path.replace(target / path.name)


def _repair_index(directory: Path, latest: str, kept: list[str]) -> None:
    listed = read_index(directory)
    if listed is not None and listed and listed[-1] == latest:
        return
    index = directory / INDEX_FILE
    if index.exists() and listed is None:
        index.replace(directory / (INDEX_FILE + ".damaged"))
        logging.warning("checkpoint index %s was unreadable; rebuilt it from the files", index)
    tf.compat.v1.train.update_checkpoint_state(
        str(directory),
        Path(latest).name,
        all_model_checkpoint_paths=[Path(p).name for p in reversed(kept)],
    )
