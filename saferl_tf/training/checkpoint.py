"""Run checkpoints: the agent and the loop's counters in one ``tf.train.Checkpoint``."""

from __future__ import annotations

import logging
from pathlib import Path

import tensorflow as tf

from saferl_tf.checkpoints import restore_newest


class LoopState(tf.Module):
    """The training loop's counters, as variables so that they are checkpointed."""

    def __init__(self):
        super().__init__(name="loop")
        self.env_steps = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.episodes = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.total_cost = tf.Variable(0.0, dtype=tf.float64, trainable=False)
        self.next_eval = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.last_eval = tf.Variable(-1, dtype=tf.int64, trainable=False)
        self.next_checkpoint = tf.Variable(0, dtype=tf.int64, trainable=False)


class RunCheckpoint:
    """Saves and restores ``agent`` and ``loop`` under ``directory``.

    Agents move NumPy state into variables in ``before_checkpoint`` and back in
    ``after_restore``; this class calls both.
    """

    def __init__(self, directory: str | Path, agent, loop: LoopState, max_to_keep: int = 3):
        self.directory = Path(directory)
        self.agent = agent
        self.max_to_keep = max_to_keep
        self._checkpoint = tf.train.Checkpoint(agent=agent, loop=loop)
        self._manager = self._make_manager()
        self.restored: str | None = None

    def _make_manager(self) -> tf.train.CheckpointManager:
        return tf.train.CheckpointManager(
            self._checkpoint, str(self.directory), max_to_keep=self.max_to_keep
        )

    @property
    def latest(self) -> str | None:
        return self._manager.latest_checkpoint

    def save(self, step: int) -> str:
        self.agent.before_checkpoint()
        return self._manager.save(checkpoint_number=int(step))

    def restore(self) -> bool:
        """Restores the newest checkpoint that restores; False when there is none.

        Found from the files as well as the index (``checkpoints.restore_newest``).
        Raises CheckpointError (one line) when checkpoints exist but none
        restores: corrupt files, or ones written by a different agent.
        """
        self.restored = restore_newest(self._checkpoint, self.directory)
        if self.restored is None:
            return False
        # The index may have been rebuilt: the manager must see the files it lists.
        self._manager = self._make_manager()
        logging.info("restored %s", self.restored)
        self.agent.after_restore()
        return True
