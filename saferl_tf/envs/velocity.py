"""safety-gymnasium's velocity tasks with a known cost and termination.

``Safety<Robot>Velocity-v0/-v1`` (HalfCheetah, Hopper, Walker2d, Ant, Swimmer,
Humanoid) are gymnasium's MuJoCo v4 robots with cost ``float(velocity >
threshold)``, where the velocity is a displacement over the step divided by dt
(the frame skip's time), not a quantity of the observation:

- x tasks (HalfCheetah, Hopper, Walker2d: v0 and v1; Swimmer-v1):
  ``(qpos[0]_after - qpos[0]_before) / dt``, the x velocity of the root;
- planar tasks (Ant and Humanoid: v0 and v1; Swimmer-v0): the speed
  ``sqrt(vx^2 + vy^2)`` of the xy displacement / dt, of the torso (Ant), the
  mass centre (Humanoid) or the root (Swimmer).

The observation leaves x out and holds only instantaneous velocities, so, as
PETS does for HalfCheetah, ``VelocityObservation`` appends that step's
displacement velocity (the one the task's cost compares; 0.0 after a reset)
as one extra last observation entry, and the cost becomes a function of the
next observation: ``next_observation[..., -1] > threshold``.

**Deviation from the environment**: the extra entry exists only in
environments made with ``envs.make(env_id, task_observation=True)``; the task
functions' cost needs it (``TaskFunctions.observation_wrapper`` is this
wrapper). The velocity is read from the environment's own ``info``
('x_velocity', 'y_velocity'), computed as the environment computes it, and
stored as float32; where the float32 rounding would flip the comparison with
the float32 threshold, the entry is moved by one float32 step to the side the
environment's float64 comparison chose, so that the cost function equals the
environment's cost exactly.

Thresholds and healthy ranges are read from the installed safety-gymnasium
(one instance per task, made once and cached), never written here.

Termination (``terminal``) is gymnasium v4's ``not is_healthy`` on the next
observation (``envs.termination``); HalfCheetah and Swimmer never terminate.

The reward is left to be learned (``reward`` None). All functions are
TensorFlow on batches [..., O], without Python branching on values (XLA
compiles them), and import TensorFlow only when called.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from gymnasium import spaces

from saferl_tf.envs import wrappers
from saferl_tf.envs.registry import TaskFunctions
from saferl_tf.envs.termination import read_healthy, termination

_VELOCITY_TASK = re.compile(r"^Safety(?P<robot>[A-Za-z0-9]+)Velocity-v(?P<version>\d+)$")

# The velocity each installed velocity task's cost compares with its threshold:
# 'x' (info['x_velocity']) or 'planar' (the norm of info's x and y velocities).
COST_VELOCITY: dict[str, str] = {
    "SafetyHalfCheetahVelocity-v0": "x",
    "SafetyHalfCheetahVelocity-v1": "x",
    "SafetyHopperVelocity-v0": "x",
    "SafetyHopperVelocity-v1": "x",
    "SafetyWalker2dVelocity-v0": "x",
    "SafetyWalker2dVelocity-v1": "x",
    "SafetySwimmerVelocity-v0": "planar",
    "SafetySwimmerVelocity-v1": "x",
    "SafetyAntVelocity-v0": "planar",
    "SafetyAntVelocity-v1": "planar",
    "SafetyHumanoidVelocity-v0": "planar",
    "SafetyHumanoidVelocity-v1": "planar",
}


def is_velocity_task(name: str) -> bool:
    """True for a safety-gymnasium velocity task these functions describe."""
    return name in COST_VELOCITY


def robot(name: str) -> str:
    """'SafetyHopperVelocity-v1' -> 'Hopper'."""
    match = _VELOCITY_TASK.match(name)
    if match is None:
        raise ValueError(f"not a safety-gymnasium velocity task: {name!r}")
    return match["robot"]


def step_velocity(info: dict, planar: bool) -> float:
    """The velocity the task's cost compares, from the environment's step ``info``."""
    x_velocity = info["x_velocity"]
    if not planar:
        return float(x_velocity)
    y_velocity = info["y_velocity"]
    return float(np.sqrt(x_velocity**2 + y_velocity**2))  # as the environment computes it


def float32_entry(velocity: float, threshold: float) -> np.float32:
    """``velocity`` as float32, on the same side of float32(threshold) as in float64.

    Rounding to float32 may put a velocity within one float32 step of the
    threshold on the other side (or on it); such a value moves by one step.
    """
    value, limit = np.float32(velocity), np.float32(threshold)
    above = velocity > threshold
    if bool(value > limit) != above:
        value = np.nextafter(limit, np.float32(np.inf)) if above else limit
    return value


class VelocityObservation(wrappers.Wrapper):
    """Appends the step's displacement velocity (the cost's velocity) to the observation.

    ``name``: the safety-gymnasium task id; the wrapped environment must be it
    (the threshold is read from ``env.unwrapped._velocity_threshold``). The
    entry is 0.0 after a reset. Raises RuntimeError if the environment's cost
    disagrees with the velocity (the installed task computes another one).
    """

    def __init__(self, env: wrappers.SafeEnv, name: str):
        super().__init__(env)
        self.name = name
        self.planar = COST_VELOCITY[name] == "planar"
        self.threshold = float(env.unwrapped._velocity_threshold)
        space = env.observation_space
        self.observation_space = spaces.Box(
            np.append(space.low, -np.inf).astype(np.float32),
            np.append(space.high, np.inf).astype(np.float32),
            (space.shape[0] + 1,),
            np.float32,
        )

    @staticmethod
    def _append(observation, value) -> np.ndarray:
        return np.append(np.asarray(observation, np.float32), np.float32(value))

    def reset(self, seed=None):
        observation, info = self.env.reset(seed=seed)
        return self._append(observation, 0.0), info

    def step(self, action):
        observation, reward, cost, terminated, truncated, info = self.env.step(action)
        velocity = step_velocity(info, self.planar)
        if float(velocity > self.threshold) != cost:
            raise RuntimeError(
                f"{self.name}: the step's cost {cost} does not follow from its velocity "
                f"{velocity} and threshold {self.threshold}; the installed task computes "
                "its cost otherwise"
            )
        entry = float32_entry(velocity, self.threshold)
        return self._append(observation, entry), reward, cost, terminated, truncated, info


@dataclasses.dataclass(frozen=True)
class VelocityTask:
    """What the task functions read from the installed environment."""

    name: str
    robot: str
    planar: bool
    threshold: float
    observation_size: int  # without the appended entry
    nq: int
    nv: int
    healthy: dict[str, Any]  # gymnasium's _healthy_* ranges of the robot


@functools.cache
def velocity_task(name: str) -> VelocityTask:
    """Reads ``name``'s threshold and healthy ranges from one instance (cached)."""
    from saferl_tf.envs.safety_gym import import_safety_gymnasium

    safety_gymnasium = import_safety_gymnasium()
    with warnings.catch_warnings():  # '-v0 is out of date': this instance only reads constants
        warnings.simplefilter("ignore")
        env = safety_gymnasium.make(name)
    try:
        inner = env.unwrapped
        healthy = read_healthy(inner, name)
        return VelocityTask(
            name=name,
            robot=robot(name),
            planar=COST_VELOCITY[name] == "planar",
            threshold=float(inner._velocity_threshold),
            observation_size=int(env.observation_space.shape[0]),
            nq=int(inner.model.nq),
            nv=int(inner.model.nv),
            healthy=healthy,
        )
    finally:
        env.close()


def velocity_threshold(name: str) -> float:
    """The installed task's velocity threshold."""
    return velocity_task(name).threshold


def _velocity_cost(threshold: float) -> Callable:
    def cost(observation, action, next_observation):
        """1.0 where the step's velocity (the last observation entry) exceeds the threshold."""
        import tensorflow as tf

        del observation, action
        next_observation = tf.convert_to_tensor(next_observation)
        velocity = tf.cast(next_observation[..., -1], tf.float32)
        return tf.cast(velocity > tf.constant(threshold, tf.float32), next_observation.dtype)

    return cost


@functools.cache
def task_functions(name: str) -> TaskFunctions | None:
    """The cost and termination of safety-gymnasium task ``name``; None unless a velocity task.

    They hold for observations of ``VelocityObservation`` (``envs.make(...,
    task_observation=True)``); the reward is learned (None).
    """
    if not is_velocity_task(name):
        return None
    task = velocity_task(name)
    return TaskFunctions(
        reward=None,
        cost=_velocity_cost(task.threshold),
        terminal=termination(task.robot, task.healthy, task.nq, task.nv),
        observation_wrapper=functools.partial(VelocityObservation, name=name),
    )
