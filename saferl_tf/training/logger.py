"""TensorBoard scalars plus a plain ``metrics.jsonl`` beside them.

Each ``write(metrics, step)`` becomes one TensorBoard scalar per name and one
JSON line ``{"step": step, "name": value, ...}``. Safety metrics carry the same
names everywhere: ``episode_return``, ``episode_cost``, ``cost_rate``, under a
``train/`` or ``eval/`` prefix. ``video`` and ``record_video`` write MP4
files under ``videos/`` and show them in TensorBoard's Images tab.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import tensorflow as tf

from saferl_tf.files import METRICS_FILE

TENSORBOARD_VIDEO_FRAMES = 250
TENSORBOARD_VIDEO_SIZE = 160


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

    def video(self, name: str, frames, step: int, fps: float = 20) -> Path:
        """Writes frames uint8 [T, H, W, 3] as ``videos/<name>-<step>.mp4`` and as
        an animated image in TensorBoard (``record_video``); returns the MP4's path."""
        recording = self.record_video(name, step, fps)
        try:
            for frame in frames:
                recording.append(frame)
        except BaseException:
            recording.abandon()
            raise
        return recording.close()

    def record_video(self, name: str, step: int, fps: float = 20) -> VideoRecording:
        """A video written frame by frame: ``append(frame)`` then ``close()``.

        The frames stream into ``videos/<name>-<step>.mp4`` (a file of that name
        is never overwritten: a resumed run that redoes a step gets
        ``-<step>.2.mp4``); ``close()`` also logs them to TensorBoard as an
        animated image (its Images tab plays it), thinned to at most
        ``TENSORBOARD_VIDEO_FRAMES`` frames of ``TENSORBOARD_VIDEO_SIZE`` pixels
        to keep the event file small.
        """
        folder = self.log_dir / "videos"
        folder.mkdir(exist_ok=True)
        stem = f"{name.replace('/', '_')}-{int(step)}"
        path, copy = folder / f"{stem}.mp4", 1
        while path.exists():
            copy += 1
            path = folder / f"{stem}.{copy}.mp4"
        return VideoRecording(self, name, int(step), path, fps)

    def _write_animation(self, name: str, step: int, frames: np.ndarray, fps: float) -> None:
        from saferl_tf.training.video import gif_bytes

        summary = tf.compat.v1.Summary()
        summary.value.add(
            tag=name,
            image=tf.compat.v1.Summary.Image(
                height=frames.shape[1], width=frames.shape[2], colorspace=3,
                encoded_image_string=gif_bytes(frames, fps),
            ),
        )  # fmt: skip
        with self._writer.as_default(step=step):
            tf.summary.experimental.write_raw_pb(summary.SerializeToString(), step=step)

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


class VideoRecording:
    """One video being written by ``Logger.record_video``."""

    def __init__(self, logger: Logger, name: str, step: int, path: Path, fps: float):
        from saferl_tf.training.video import Mp4Writer

        self._logger, self._name, self._step, self.fps = logger, name, step, fps
        self._file = Mp4Writer(path, fps)
        self._small: list[np.ndarray] = []  # Downscaled copies for TensorBoard.

    def append(self, frame: np.ndarray) -> None:
        from saferl_tf.envs.wrappers import resize_image

        frame = np.asarray(frame, np.uint8)
        self._file.append(frame)
        small = frame
        if frame.shape[0] > TENSORBOARD_VIDEO_SIZE:
            small = resize_image(frame, TENSORBOARD_VIDEO_SIZE)
        self._small.append(small)

    def close(self) -> Path | None:
        """Finishes the MP4 and logs the animation; the MP4's path (None: no frames)."""
        path = self._file.close()
        if self._small:
            frames = np.stack(self._small)
            stride = max(1, -(-len(frames) // TENSORBOARD_VIDEO_FRAMES))
            self._logger._write_animation(self._name, self._step, frames[::stride],
                                          self.fps / stride)  # fmt: skip
        self._small = []
        return path

    def abandon(self) -> None:
        self._file.abandon()
        self._small = []
