"""Videos of episodes: text overlays, MP4 files and animated TensorBoard images.

``annotate(frame, "return 12.3  cost 0")`` writes a line (or several) in the
top-left corner of a frame. ``Mp4Writer(path, fps)`` takes frames one at a
time (``append``) and streams them to ffmpeg (imageio's ffmpeg plugin, whose
``imageio-ffmpeg`` wheel brings its own binary), so that a long evaluation
never holds its frames in memory; the file appears at ``path`` only when
``close()`` finishes, so a killed evaluation leaves no half-written video.
``gif_summary(name, frames, fps)`` is the TensorBoard form: an animated GIF in
an image summary, which TensorBoard's Images tab plays.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from saferl_tf.errors import ConfigError

_FONT_SIZE_FRACTION = 0.045  # Of the frame height: readable at 480 px and at 128.


def _font(height: int):
    from PIL import ImageFont

    return ImageFont.load_default(size=max(8, round(height * _FONT_SIZE_FRACTION)))


def annotate(frame: np.ndarray, text: str | Sequence[str]) -> np.ndarray:
    """``frame`` (uint8 [H, W, 3]) with ``text`` in white on a dark band, top left."""
    from PIL import Image, ImageDraw

    lines = [text] if isinstance(text, str) else list(text)
    image = Image.fromarray(np.ascontiguousarray(frame, np.uint8))
    draw = ImageDraw.Draw(image, "RGBA")
    font = _font(image.height)
    margin = max(2, image.height // 100)
    y = margin
    for line in lines:
        left, top, right, bottom = draw.textbbox((margin, y), line, font=font)
        draw.rectangle((left - margin, top - margin, right + margin, bottom + margin),
                       fill=(0, 0, 0, 150))  # fmt: skip
        draw.text((margin, y), line, fill=(255, 255, 255, 255), font=font)
        y = bottom + 2 * margin
    return np.asarray(image)


class Mp4Writer:
    """Streams frames into an H.264 MP4 at ``path`` (see the module docstring).

    Frames must all have one even height and width (H.264's 4:2:0 colour
    needs both even). Raises ConfigError when ``path`` exists: a video is
    never written over.
    """

    def __init__(self, path: str | Path, fps: float):
        self.path = Path(path)
        if self.path.exists():
            raise ConfigError(f"{self.path} exists; name a new video file (nothing is overwritten)")
        if self.path.suffix.lower() != ".mp4":
            raise ConfigError(f"a video file must end in .mp4, got {self.path.name}")
        if not self.path.parent.is_dir():
            raise ConfigError(f"cannot write {self.path}: folder {self.path.parent} does not exist")
        self.fps = fps
        self.frames = 0
        self._partial = self.path.with_name(f".{self.path.stem}.partial.mp4")
        self._writer = None

    def append(self, frame: np.ndarray) -> None:
        frame = np.asarray(frame, np.uint8)
        if self._writer is None:
            if frame.shape[0] % 2 or frame.shape[1] % 2:
                raise ConfigError(f"video frames need an even height and width, got {frame.shape}")
            import imageio.v2 as imageio

            self._writer = imageio.get_writer(
                self._partial, format="FFMPEG", mode="I", fps=self.fps, codec="libx264",
                pixelformat="yuv420p", macro_block_size=2, quality=7,
            )  # fmt: skip
        self._writer.append_data(frame)
        self.frames += 1

    def close(self) -> Path | None:
        """Finishes the file and moves it to ``path``; None when no frame came."""
        if self._writer is None:
            return None
        self._writer.close()
        self._writer = None
        os.replace(self._partial, self.path)
        return self.path

    def abandon(self) -> None:
        """Stops without a file (an evaluation that failed or was stopped)."""
        if self._writer is not None:
            try:
                self._writer.close()
            finally:
                self._writer = None
                self._partial.unlink(missing_ok=True)


def gif_bytes(frames: np.ndarray, fps: float) -> bytes:
    """Frames uint8 [T, H, W, 3] as an animated GIF that loops."""
    import imageio.v2 as imageio

    buffer = io.BytesIO()
    imageio.mimwrite(buffer, list(np.asarray(frames, np.uint8)), format="GIF",
                     duration=1000.0 / fps, loop=0)  # fmt: skip
    return buffer.getvalue()
