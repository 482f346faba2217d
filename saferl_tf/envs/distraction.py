"""Distractor dimensions: k observation entries with their own non-linear,
switching dynamics, uncorrelated with the task (VaGraM's distraction
experiment, Voelcker et al. 2022).

On every step, the distractor state x [k] moves as::

    y  = M x
    x' = y + 0.1 sin(P y)
    x'_j = c_j  wherever |x'_j| > 20        (switching: a fixed reset point)

and the observation is the task's with x' appended. On reset x ~ N(0, 0.1²)
and one step is applied. M [k, k] ~ N(0, 1), P = (10 N(0, 1))² (entries >= 0)
and c ~ N(0, 1) are drawn once from ``parameter_seed``, as in the published
code; unlike it, the training and evaluation environments share them (the
published code drew the training environment's before seeding, from an
unseeded generator). Reward, cost and termination are the task's: the
distractors carry no information.

Usable on any environment id: ``envs.make(env_id, distraction_dimensions=k)``
(``saferl-train --distraction_dimensions=k``).
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from saferl_tf.envs import wrappers

RESET_BOUND = 20.0


class Distraction(wrappers.Wrapper):
    def __init__(
        self, env, dimensions: int, parameter_seed: int = 0, state_seed: int | None = None
    ):
        if dimensions < 1:
            raise ValueError(f"distraction needs at least 1 dimension, got {dimensions}")
        super().__init__(env)
        space = env.observation_space
        if not isinstance(space, spaces.Box) or len(space.shape) != 1:
            raise ValueError(f"distraction needs flat vector observations, got {space}")
        self.dimensions = dimensions
        parameters = np.random.default_rng(parameter_seed)
        self.linear_map = parameters.normal(size=(dimensions, dimensions))
        self.sine_frequencies = (10.0 * parameters.normal(size=(dimensions, dimensions))) ** 2
        self.reset_point = parameters.normal(size=dimensions)
        self.rng = np.random.default_rng(state_seed)
        self.state = np.zeros(dimensions)
        low = np.concatenate([space.low, np.full(dimensions, -np.inf)]).astype(space.dtype)
        high = np.concatenate([space.high, np.full(dimensions, np.inf)]).astype(space.dtype)
        self.observation_space = spaces.Box(low, high, dtype=space.dtype)

    def advance(self, state: np.ndarray) -> np.ndarray:
        """One step of the distractor dynamics: x [k] -> x' [k]."""
        moved = self.linear_map @ state
        following = moved + 0.1 * np.sin(self.sine_frequencies @ moved)
        return np.where(np.abs(following) > RESET_BOUND, self.reset_point, following)

    def _observation(self, observation):
        return np.concatenate([observation, self.state]).astype(self.observation_space.dtype)

    def reset(self, seed=None):
        if seed is not None:
            self.rng = np.random.default_rng(seed + 7_919)
        observation, info = self.env.reset(seed=seed)
        self.state = self.advance(self.rng.normal(0.0, 0.1, self.dimensions))
        return self._observation(observation), info

    def step(self, action):
        observation, reward, cost, terminated, truncated, info = self.env.step(action)
        self.state = self.advance(self.state)
        return self._observation(observation), reward, cost, terminated, truncated, info
