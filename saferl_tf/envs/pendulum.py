"""``saferl_ConstrainedPendulum-v0``: swing a pendulum up without spinning too fast.

gymnasium's Pendulum (g = 10, m = l = 1, dt 0.05) with a constraint on the
angular speed. The action in [-1, 1] is scaled to a torque in [-2, 2]; the
pendulum starts hanging down (θ = π ± 0.1, at rest); episodes last 200 steps.
Observation: (cos θ, sin θ, θ̇). Reward per step: −(θ² + 0.1 θ̇² + 0.001 u²)
with θ wrapped to [−π, π] and u the torque, on the state the action is
applied in (as gymnasium's Pendulum). Cost: 1 when the step ends with
|θ̇| > 6, the angular-speed limit; the speed itself is clipped at 12.

The torque cannot lift the pendulum directly, so a swing-up must pump energy,
and pumping fast is what the speed limit forbids. The reward and cost are
exposed as TensorFlow functions (``TASK_FUNCTIONS``) for planners that assume
them known. They import TensorFlow when called, not on import, so that
environment worker processes (which register this task) stay without it.
"""

from __future__ import annotations

import gymnasium
import numpy as np
from gymnasium import spaces

from saferl_tf.envs.registry import TaskFunctions, register_env

GRAVITY, MASS, LENGTH, DT = 10.0, 1.0, 1.0, 0.05
MAX_TORQUE = 2.0
MAX_SPEED = 12.0
SPEED_LIMIT = 6.0
EPISODE_STEPS = 200


def _wrap(angle):
    return (angle + np.pi) % (2 * np.pi) - np.pi


class ConstrainedPendulumEnv(gymnasium.Env):
    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}

    def __init__(self, render_mode: str | None = None):
        self.render_mode = render_mode
        high = np.array([1.0, 1.0, MAX_SPEED], np.float32)
        self.observation_space = spaces.Box(-high, high, dtype=np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.angle = np.pi
        self.speed = 0.0

    def _observation(self) -> np.ndarray:
        return np.array([np.cos(self.angle), np.sin(self.angle), self.speed], np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.angle = np.pi + self.np_random.uniform(-0.1, 0.1)
        self.speed = 0.0
        return self._observation(), {}

    def step(self, action):
        torque = MAX_TORQUE * float(np.clip(np.asarray(action, np.float64).reshape(-1)[0], -1, 1))
        reward = -(_wrap(self.angle) ** 2 + 0.1 * self.speed**2 + 0.001 * torque**2)
        acceleration = 3 * GRAVITY / (2 * LENGTH) * np.sin(self.angle)
        acceleration += 3.0 / (MASS * LENGTH**2) * torque
        self.speed = float(np.clip(self.speed + acceleration * DT, -MAX_SPEED, MAX_SPEED))
        self.angle = self.angle + self.speed * DT
        cost = float(abs(self.speed) > SPEED_LIMIT)
        return self._observation(), reward, False, False, {"cost": cost}

    def render(self):
        size = 64
        image = np.full((size, size, 3), 255, np.uint8)
        grid = (np.stack(np.meshgrid(np.arange(size), np.arange(size)), -1) + 0.5) / size
        world = np.stack([grid[..., 0] * 2.4 - 1.2, 1.2 - grid[..., 1] * 2.4], -1)
        tip = np.array([np.sin(self.angle), np.cos(self.angle)])  # θ = 0 is upright.
        along = np.clip(world @ tip, 0.0, 1.0)[..., None]
        rod = np.linalg.norm(world - along * tip, axis=-1) < 0.06
        fast = abs(self.speed) > SPEED_LIMIT
        image[rod] = (230, 60, 60) if fast else (60, 60, 200)
        return image


def pendulum_reward(observation, action, next_observation):
    """The step reward on batches: [..., 3], [..., 1], [..., 3] -> [...]."""
    import tensorflow as tf

    del next_observation
    angle = tf.atan2(observation[..., 1], observation[..., 0])
    torque = MAX_TORQUE * tf.clip_by_value(action[..., 0], -1.0, 1.0)
    return -(tf.square(angle) + 0.1 * tf.square(observation[..., 2]) + 0.001 * tf.square(torque))


def pendulum_cost(observation, action, next_observation):
    """The step cost on batches: 1.0 where the step ends faster than the limit."""
    import tensorflow as tf

    del observation, action
    return tf.cast(tf.abs(next_observation[..., 2]) > SPEED_LIMIT, next_observation.dtype)


def pendulum_step(observation, action):
    """The true dynamics on batches: observation [..., 3], action [..., 1] -> next [..., 3]."""
    import tensorflow as tf

    angle = tf.atan2(observation[..., 1], observation[..., 0])
    torque = MAX_TORQUE * tf.clip_by_value(action[..., 0], -1.0, 1.0)
    acceleration = 3 * GRAVITY / (2 * LENGTH) * tf.sin(angle) + 3.0 / (MASS * LENGTH**2) * torque
    speed = tf.clip_by_value(observation[..., 2] + acceleration * DT, -MAX_SPEED, MAX_SPEED)
    angle = angle + speed * DT
    return tf.stack([tf.cos(angle), tf.sin(angle), speed], axis=-1)


TASK_FUNCTIONS = TaskFunctions(reward=pendulum_reward, cost=pendulum_cost)

register_env(
    "ConstrainedPendulum-v0",
    lambda **kwargs: ConstrainedPendulumEnv(**kwargs),
    max_episode_steps=EPISODE_STEPS,
    task_functions=TASK_FUNCTIONS,
    total_steps=4_000,  # 20 episodes: `pessimistic` swung it up within 15 on 3 seeds.
)
