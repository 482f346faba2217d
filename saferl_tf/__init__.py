"""saferl_tf: safe model-based reinforcement learning in TensorFlow 2.

Subpackages: ``envs`` (environments), ``agents`` (the agent contract and
agents), ``data`` (replay), ``training`` (loop, logging, checkpoints).
Importing ``saferl_tf`` itself does not import TensorFlow, so environment
worker processes stay light.
"""

import contextlib as _contextlib
import io as _io
import os as _os

__version__ = "0.1.0"

# Headless MuJoCo rendering: EGL works on a CPU-only machine, OSMesa did not.
# MuJoCo reads MUJOCO_GL when it is first imported (gymnasium's plugins import
# it), so this must come first; an explicit setting wins.
if not _os.environ.get("DISPLAY"):
    _os.environ.setdefault("MUJOCO_GL", "egl")

# gymnasium loads its plugins (gymnasium-robotics) on import, and that prints a
# notice about the Adroit tasks, which this package does not use.
with _contextlib.redirect_stderr(_io.StringIO()):
    import gymnasium as _gymnasium  # noqa: F401
