"""Small, fast environments for tests, registered as ``saferl_Test*`` ids.

Import this module (``--imports=tests/fake_envs.py`` for a launcher) to
register them.
"""

from __future__ import annotations

import gymnasium
import numpy as np
from gymnasium import spaces

from saferl_tf.envs import register_env


class CountingEnv(gymnasium.Env):
    """Observation [t, x, y]; reward 1 per step; cost 1 on every third step.

    Actions in [-2, 2]^2 move (x, y). Episodes terminate after ``length`` steps.
    Renders a 32x48 frame whose red channel is t, so pixel wrappers can be checked.
    """

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self, length: int = 10, render_mode: str | None = None):
        self.length = length
        self.render_mode = render_mode
        self.observation_space = spaces.Box(-np.inf, np.inf, (3,), np.float64)
        self.action_space = spaces.Box(-2.0, 2.0, (2,), np.float64)
        self.t = 0
        self.position = np.zeros(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        self.position = self.np_random.uniform(-1, 1, 2)
        return self._observation(), {}

    def _observation(self):
        return np.array([self.t, *self.position])

    def step(self, action):
        self.last_action = np.asarray(action)
        self.position = self.position + 0.1 * self.last_action
        self.t += 1
        cost = 1.0 if self.t % 3 == 0 else 0.0
        terminated = self.t >= self.length
        return self._observation(), 1.0, terminated, False, {"cost": cost}

    def render(self):
        frame = np.zeros((32, 48, 3), np.uint8)
        frame[..., 0] = min(self.t, 255)
        return frame


class CrashingEnv(CountingEnv):
    """Raises on the fifth step, to test error reporting from workers."""

    def step(self, action):
        if self.t == 4:
            raise RuntimeError("the crashing test environment crashed")
        return super().step(action)


class ActionRewardEnv(CountingEnv):
    """Reward 1 + 0 * sum(action): a NaN action gives a NaN reward."""

    def step(self, action):
        observation, reward, terminated, truncated, info = super().step(action)
        return observation, reward + 0.0 * float(np.sum(action)), terminated, truncated, info


register_env("TestCounting-v0", lambda **kwargs: CountingEnv(**kwargs), max_episode_steps=100)
register_env("TestCountingLong-v0", lambda **kwargs: CountingEnv(length=1000, **kwargs))
register_env("TestCountingBudget-v0", lambda **kwargs: CountingEnv(**kwargs), total_steps=60)
register_env("TestCrashing-v0", lambda **kwargs: CrashingEnv(**kwargs))
register_env("TestActionReward-v0", lambda **kwargs: ActionRewardEnv(**kwargs))
