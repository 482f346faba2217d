"""``saferl_LQR-v0``: the linear-quadratic regulator used in GIBO's experiments.

x_{t+1} = A x_t + B u_t + w_t with A near identity (3x3, slightly unstable:
1.01 on the diagonal, 0.01 beside it, as in Mania et al.'s ARS benchmark),
B = I, w_t ~ N(0, I); reward -(x^T Q x + u^T R u) with Q = I / 1000 and
R = I; x_0 ~ N(0, I); 300 steps. Actions are unbounded (a linear policy
u = K x is the usual controller). There is no constraint, so cost is 0.
"""

from __future__ import annotations

import gymnasium
import numpy as np
from gymnasium import spaces

from saferl_tf.envs.registry import register_env

A = np.array([[1.01, 0.01, 0.0], [0.01, 1.01, 0.01], [0.0, 0.01, 1.01]])
B = np.eye(3)
Q = np.eye(3) / 1000.0
R = np.eye(3)


class LQREnv(gymnasium.Env):
    metadata = {"render_modes": []}

    def __init__(self, render_mode: str | None = None):
        self.render_mode = render_mode
        self.observation_space = spaces.Box(-np.inf, np.inf, (3,), np.float64)
        self.action_space = spaces.Box(-np.inf, np.inf, (3,), np.float64)
        self.state = np.zeros(3)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.state = self.np_random.normal(size=3)
        return self.state.copy(), {}

    def step(self, action):
        action = np.asarray(action, np.float64).reshape(3)
        reward = -(self.state @ Q @ self.state + action @ R @ action)
        self.state = A @ self.state + B @ action + self.np_random.normal(size=3)
        return self.state.copy(), float(reward), False, False, {"cost": 0.0}


register_env("LQR-v0", lambda **kwargs: LQREnv(**kwargs), max_episode_steps=300)
