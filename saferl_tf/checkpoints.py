"""Restoring a ``tf.train.Checkpoint`` with a one-line error when it is unusable."""

from __future__ import annotations

import tensorflow as tf

from saferl_tf.errors import CheckpointError


def restore_checkpoint(checkpoint: tf.train.Checkpoint, path: str) -> None:
    """Restores ``path`` into ``checkpoint``; every object must find its values.

    Raises CheckpointError naming the file when it is corrupt, truncated or was
    written by a different agent. The files are left untouched.
    """
    try:
        checkpoint.restore(path).assert_existing_objects_matched()
    except Exception as error:  # TF raises many kinds here (OpError, IndexError, ...).
        text = str(error).strip()
        reason = text.splitlines()[0] if text else type(error).__name__
        raise CheckpointError(
            f"cannot restore checkpoint {path}: {reason}; "
            "move the run folder aside or choose another --log_dir"
        ) from None
