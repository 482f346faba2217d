"""TransitionArchive: the newest transitions as NumPy fields, in a checkpoint.

A ring buffer of named fields (each [capacity, *shape]) for agents that need
more per transition than ``EpisodeReplay`` keeps, for example the epoch a
transition was collected in and the policy's distribution at it (CMBPO).
Fields come back in the order they were added. ``before_checkpoint`` copies
the stored rows into shape-free ``tf.Variable``s, so that a
``tf.train.Checkpoint`` of the owner holds them; ``after_restore`` reads them
back.

Call sequence::

    archive = TransitionArchive(300_000, {"observation": ((17,), np.float32),
                                          "epoch": ((), np.int32)})
    archive.add(observation=o [N, 17], epoch=e [N])
    rows = archive.newest(1000)        # {field: [1000, ...]}, oldest first
    costs = archive.newest_of("cost", 1000)   # one field's [1000, ...]
    everything = archive.fields()      # {field: [len(archive), ...]}
    archive.before_checkpoint(); ...save...; ...restore...; archive.after_restore()
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import tensorflow as tf


class TransitionArchive(tf.Module):
    def __init__(self, capacity: int, fields: Mapping[str, tuple[tuple[int, ...], type]],
                 name: str = "archive"):  # fmt: skip
        super().__init__(name=name)
        if capacity < 1:
            raise ValueError(f"archive capacity must be >= 1, got {capacity}")
        self.capacity = int(capacity)
        self._data = {key: np.zeros((self.capacity, *shape), dtype)
                      for key, (shape, dtype) in fields.items()}  # fmt: skip
        self.added = 0  # Rows ever added; the next row goes to added % capacity.
        self._saved = {key: tf.Variable(np.zeros((0, *shape), dtype), shape=tf.TensorShape(None),
                                        trainable=False, name=key)
                       for key, (shape, dtype) in fields.items()}  # fmt: skip
        self._saved_added = tf.Variable(0, dtype=tf.int64, trainable=False)

    def __len__(self) -> int:
        return min(self.added, self.capacity)

    def add(self, **rows) -> None:
        """One batch [N, ...] for every field."""
        if rows.keys() != self._data.keys():
            raise ValueError(
                f"add needs exactly the fields {sorted(self._data)}, got {sorted(rows)}"
            )
        count = len(next(iter(rows.values())))
        positions = (self.added + np.arange(count)) % self.capacity
        for key, value in rows.items():
            self._data[key][positions] = value
        self.added += count

    def _order(self) -> np.ndarray:
        """Row indices of the stored transitions, oldest first."""
        stored = len(self)
        return (self.added - stored + np.arange(stored)) % self.capacity

    def fields(self) -> dict[str, np.ndarray]:
        order = self._order()
        return {key: value[order] for key, value in self._data.items()}

    def newest(self, count: int) -> dict[str, np.ndarray]:
        """The newest ``count`` rows (at most ``len(self)``), oldest first."""
        order = self._order()[len(self) - min(count, len(self)) :]
        return {key: value[order] for key, value in self._data.items()}

    def newest_of(self, key: str, count: int) -> np.ndarray:
        """Field ``key`` of the newest ``count`` rows (at most ``len(self)``), oldest
        first, without touching the other rows."""
        count = min(count, len(self))
        return self._data[key][(self.added - count + np.arange(count)) % self.capacity]

    def sample(self, count: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """``count`` stored rows drawn uniformly with replacement (no copy of the rest)."""
        rows = rng.integers(0, len(self), count)
        return {key: value[rows] for key, value in self._data.items()}

    def before_checkpoint(self) -> None:
        for key, value in self.fields().items():
            self._saved[key].assign(value)
        self._saved_added.assign(self.added)

    def after_restore(self) -> None:
        self.added = int(self._saved_added.numpy())
        stored = len(self)
        order = (self.added - stored + np.arange(stored)) % self.capacity
        for key, variable in self._saved.items():
            value = variable.numpy()
            if len(value) != stored:
                raise ValueError(
                    f"archive field {key!r} holds {len(value)} rows, expected {stored}"
                )
            self._data[key][order] = value
