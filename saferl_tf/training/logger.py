"""TensorBoard scalars plus a plain ``metrics.jsonl`` beside them.

Each ``write(metrics, step)`` becomes one TensorBoard scalar per name and one
JSON line ``{"step": step, "name": value, ...}``. Safety metrics carry the same
names everywhere: ``episode_return``, ``episode_cost``, ``cost_rate``, under a
``train/`` or ``eval/`` prefix.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path

import tensorflow as tf

METRICS_FILE = "metrics.jsonl"


class Logger:
    """Writes scalars to TensorBoard event files and to ``metrics.jsonl``."""

    def __init__(self, log_dir: str | Path):
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._event_writer = None
        self._metrics = open(self.log_dir / METRICS_FILE, "a", buffering=1)  # noqa: SIM115

    @property
    def _writer(self):
        # Made at the first write, so that a run refused at start leaves no file.
        if self._event_writer is None:
            self._event_writer = tf.summary.create_file_writer(str(self.log_dir))
        return self._event_writer

    def write(self, metrics: Mapping[str, float], step: int) -> None:
        if not metrics:
            return
        values = {name: float(value) for name, value in metrics.items()}
        with self._writer.as_default(step=int(step)):
            for name, value in values.items():
                tf.summary.scalar(name, value)
        row = {"step": int(step)}
        row.update({k: (v if math.isfinite(v) else str(v)) for k, v in values.items()})
        self._metrics.write(json.dumps(row) + "\n")

    def video(self, name: str, frames, step: int, fps: int = 20) -> None:
        """Writes frames [T, H, W, 3] uint8 as a GIF file and a TensorBoard image strip."""
        import imageio
        import numpy as np

        frames = np.asarray(frames, np.uint8)
        path = self.log_dir / "videos" / f"{name.replace('/', '_')}-{int(step)}.gif"
        path.parent.mkdir(exist_ok=True)
        imageio.mimsave(path, list(frames), duration=1000 / fps)
        with self._writer.as_default(step=int(step)):
            tf.summary.image(name, frames[:: max(1, len(frames) // 8)], max_outputs=8)

    def flush(self) -> None:
        if self._event_writer is not None:
            self._event_writer.flush()
        self._metrics.flush()

    def close(self) -> None:
        if self._event_writer is not None:
            self._event_writer.close()
        self._metrics.close()

    def set_aside_after(self, step: int) -> int:
        """Moves metric rows logged after ``step`` (by a run killed after its last
        checkpoint, whose steps will be redone) into ``metrics.orphaned.jsonl``.

        Returns how many rows were moved. TensorBoard event files are left as
        they are: TensorBoard shows the newest value of a repeated step.
        """
        self._metrics.flush()
        path = self.log_dir / METRICS_FILE
        kept, moved = [], []
        for line in path.read_text().splitlines():
            if not line.strip():
                continue
            try:
                row_step = json.loads(line)["step"]
            except (ValueError, KeyError, TypeError):
                kept.append(line)
                continue
            (moved if row_step > step else kept).append(line)
        if moved:
            with open(self.log_dir / "metrics.orphaned.jsonl", "a") as orphaned:
                orphaned.write("\n".join(moved) + "\n")
            temporary = path.with_suffix(".tmp")
            temporary.write_text("".join(line + "\n" for line in kept))
            self._metrics.close()
            os.replace(temporary, path)
            self._metrics = open(path, "a", buffering=1)  # noqa: SIM115
        return len(moved)


def read_metrics(log_dir: str | Path) -> list[dict]:
    """The rows of a run's ``metrics.jsonl``."""
    path = Path(log_dir) / METRICS_FILE
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
