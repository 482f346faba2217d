"""The MuJoCo robots' termination (gymnasium's ``not is_healthy``) as
TensorFlow functions of the next observation, for model rollouts.

Healthy ranges are read from the installed environment (``read_healthy``),
never written here. Observation indices assume gymnasium's
``exclude_current_positions_from_observation`` (x, and y for planar robots,
left out), so appended entries (a task observation, distractor dimensions)
do not move them:

- Hopper: ``z = obs[0] in (0.7, inf)``, ``angle = obs[1] in (-0.2, 0.2)`` and
  every entry of ``obs[1:1 + (nq - 2) + nv]`` (qpos[2:] and the velocities) in
  (-100, 100). The observation clips the velocities at +-10, so a velocity
  beyond 100 (a simulation blow-up) terminates the environment but not this
  function;
- Walker2d: ``z = obs[0] in (0.8, 2.0)``, ``angle = obs[1] in (-1, 1)``;
- Ant: every observation entry finite and ``z = obs[0] in [0.2, 1.0]``;
- Humanoid: ``z = obs[0] in (1.0, 2.0)``;
- InvertedPendulum: every entry finite and ``|obs[1]| <= 0.2`` (the pole's angle);
- HalfCheetah, Swimmer: never (None).

Each function is ``terminal(observation, action, next_observation) -> [...]``
(1.0 where the episode ends), TensorFlow without Python branching on values
(XLA compiles it), importing TensorFlow only when called.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

NEVER_TERMINATING = ("HalfCheetah", "Swimmer")
HEALTHY_ROBOTS = ("Hopper", "Walker2d", "Ant", "Humanoid")
ROBOTS = (*HEALTHY_ROBOTS, "InvertedPendulum", *NEVER_TERMINATING)


def read_healthy(inner, name: str) -> dict[str, Any]:
    """The healthy ranges of task ``name``'s unwrapped gymnasium MuJoCo environment."""
    if not getattr(inner, "_exclude_current_positions_from_observation", True):
        raise ValueError(f"{name}: the observation holds the root's positions; expected it without")
    healthy = {
        key: getattr(inner, f"_{key}")
        for key in ("healthy_z_range", "healthy_angle_range", "healthy_state_range")
        if hasattr(inner, f"_{key}")
    }
    healthy["terminate_when_unhealthy"] = getattr(inner, "_terminate_when_unhealthy", False)
    return healthy


def _between(tf, value, bounds, inclusive: bool = False):
    low, high = (tf.constant(bound, value.dtype) for bound in bounds)
    if inclusive:
        return tf.logical_and(low <= value, value <= high)
    return tf.logical_and(low < value, value < high)


def termination(robot: str, healthy: dict[str, Any], nq: int, nv: int) -> Callable | None:
    """``robot``'s termination function (module docstring); None where it never ends."""
    if robot == "InvertedPendulum":
        return _inverted_pendulum_terminal
    if robot not in HEALTHY_ROBOTS or not healthy.get("terminate_when_unhealthy", False):
        return None
    state_end = 1 + (nq - 2) + nv  # Hopper: qpos[2:] and qvel at obs[1:state_end]

    def terminal(observation, action, next_observation):
        import tensorflow as tf

        del observation, action
        following = tf.convert_to_tensor(next_observation)
        z = following[..., 0]
        if robot == "Hopper":
            state = following[..., 1:state_end]
            ok = tf.reduce_all(_between(tf, state, healthy["healthy_state_range"]), axis=-1)
            ok = tf.logical_and(ok, _between(tf, z, healthy["healthy_z_range"]))
            ok = tf.logical_and(ok, _between(tf, following[..., 1], healthy["healthy_angle_range"]))
        elif robot == "Walker2d":
            ok = _between(tf, z, healthy["healthy_z_range"])
            ok = tf.logical_and(ok, _between(tf, following[..., 1], healthy["healthy_angle_range"]))
        elif robot == "Ant":
            ok = tf.reduce_all(tf.math.is_finite(following), axis=-1)
            ok = tf.logical_and(ok, _between(tf, z, healthy["healthy_z_range"], inclusive=True))
        else:  # Humanoid
            ok = _between(tf, z, healthy["healthy_z_range"])
        return tf.cast(tf.logical_not(ok), following.dtype)

    return terminal


def _inverted_pendulum_terminal(observation, action, next_observation):
    """gymnasium's InvertedPendulum: ends when an entry is not finite or the
    pole's angle (obs[1]) leaves [-0.2, 0.2]."""
    import tensorflow as tf

    del observation, action
    following = tf.convert_to_tensor(next_observation)
    finite = tf.reduce_all(tf.math.is_finite(following), axis=-1)
    upright = tf.abs(following[..., 1]) <= tf.constant(0.2, following.dtype)
    return tf.cast(tf.logical_not(tf.logical_and(finite, upright)), following.dtype)
