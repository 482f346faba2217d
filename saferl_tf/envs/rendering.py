"""Headless MuJoCo rendering for pixel observations.

On a machine without a display, MuJoCo renders through EGL (``MUJOCO_GL=egl``;
OSMesa failed here). EGL is selected only when a pixel environment is made,
not on import, because of a crash checked on this stack (TensorFlow 2.18,
MuJoCo 2.3.3, Mesa): once Mesa's EGL library is loaded *before* TensorFlow,
every ``tf.function`` in that process segfaults; loaded after TensorFlow, both
work. gymnasium's renderer reads ``MUJOCO_GL`` when it creates its context, so
setting it here is enough; and in a process that may use TensorFlow (any but
an environment worker) TensorFlow is imported first.
"""

from __future__ import annotations

import importlib.util
import os
import sys

_IN_ENV_WORKER = False


def mark_env_worker() -> None:
    """Called in environment worker processes, which do not import TensorFlow
    (tests/test_envs.py checks that stepping every own task does not)."""
    global _IN_ENV_WORKER
    _IN_ENV_WORKER = True


def prepare_headless_rendering() -> None:
    """Chooses EGL when there is no display, loading TensorFlow before it."""
    if os.environ.get("DISPLAY"):
        return
    os.environ.setdefault("MUJOCO_GL", "egl")
    if (
        os.environ["MUJOCO_GL"] == "egl"
        and not _IN_ENV_WORKER
        and "tensorflow" not in sys.modules
        and importlib.util.find_spec("tensorflow") is not None
    ):
        import tensorflow  # noqa: F401
