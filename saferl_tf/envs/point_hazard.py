"""``saferl_PointHazard-v0``: a cheap constrained task, a point mass and a hazard.

A point mass on the plane (observation: position, velocity, and the goal and
hazard relative to it; 8 numbers) is pushed by a force in [-1, 1]^2 (damped,
dt 0.1, speed at most 2) inside walls at +-2. It starts near (-1, 0); the goal is at (1, 0) and a
hazard disc of radius 0.4 sits at (0, 0), right on the straight path. Reward
per step: -0.1 times the distance to the goal, so the best policy gets there
fast and stays. Cost: 1 for each step inside the hazard. Episodes last 100
steps. Driving straight through costs about 4 per episode; going around costs
nothing and a little return, so a small cost limit makes the agent trade
return for safety. Renders a 64x64 top view for pixel agents.
"""

from __future__ import annotations

import gymnasium
import numpy as np
from gymnasium import spaces

from saferl_tf.envs.registry import register_env

GOAL = np.array([1.0, 0.0])
HAZARD = np.array([0.0, 0.0])
HAZARD_RADIUS = 0.4
DT, DAMPING, MAX_SPEED = 0.1, 1.0, 2.0
ARENA = 2.0


class PointHazardEnv(gymnasium.Env):
    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, render_mode: str | None = None):
        self.render_mode = render_mode
        self.observation_space = spaces.Box(-np.inf, np.inf, (8,), np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.position = np.zeros(2)
        self.velocity = np.zeros(2)

    def _observation(self) -> np.ndarray:
        return np.concatenate(
            [self.position, self.velocity, GOAL - self.position, HAZARD - self.position]
        ).astype(np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.position = np.array([-1.0, 0.0]) + self.np_random.uniform(-0.05, 0.05, 2)
        self.velocity = np.zeros(2)
        return self._observation(), {}

    def step(self, action):
        force = np.clip(np.asarray(action, np.float64).reshape(2), -1.0, 1.0)
        self.velocity = (1 - DAMPING * DT) * self.velocity + DT * 2.0 * force
        speed = np.linalg.norm(self.velocity)
        if speed > MAX_SPEED:
            self.velocity *= MAX_SPEED / speed
        self.position = self.position + DT * self.velocity
        # Walls at +-2: the arena is bounded, as safety-gymnasium's are.
        outside = np.abs(self.position) > ARENA
        self.position = np.clip(self.position, -ARENA, ARENA)
        self.velocity[outside] = 0.0
        reward = -0.1 * float(np.linalg.norm(GOAL - self.position))
        cost = float(np.linalg.norm(self.position - HAZARD) < HAZARD_RADIUS)
        return self._observation(), reward, False, False, {"cost": cost}

    def render(self):
        size = 64
        image = np.full((size, size, 3), 255, np.uint8)
        grid = (np.stack(np.meshgrid(np.arange(size), np.arange(size)), -1) + 0.5) / size
        world = np.stack([grid[..., 0] * 4.0 - 2.0, 2.0 - grid[..., 1] * 4.0], -1)

        def disc(centre, radius):
            return np.linalg.norm(world - centre, axis=-1) < radius

        image[disc(HAZARD, HAZARD_RADIUS)] = (230, 60, 60)
        image[disc(GOAL, 0.15)] = (60, 180, 60)
        image[disc(self.position, 0.08)] = (40, 40, 200)
        return image


register_env(
    "PointHazard-v0",
    lambda **kwargs: PointHazardEnv(**kwargs),
    max_episode_steps=100,
    total_steps=8_000,  # LAMBDA's slow test learns it in 8k steps.
)
