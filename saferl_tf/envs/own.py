"""The package's own environments register themselves here (``saferl_`` ids).

Later environments (the constrained pendulum, the LQR) add their modules to
``_MODULES``; importing this module imports them, which registers them.
"""

from __future__ import annotations

import importlib

_MODULES: tuple[str, ...] = (
    "saferl_tf.envs.lqr",
    "saferl_tf.envs.point_hazard",
    "saferl_tf.envs.pendulum",
    "saferl_tf.envs.half_cheetah_safe",
)

for _module in _MODULES:
    importlib.import_module(_module)
