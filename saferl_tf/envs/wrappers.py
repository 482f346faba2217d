"""One step API for every environment, and the wrappers that build on it.

Every environment the package makes follows ``SafeEnv``::

    observation, info = env.reset(seed=None)
    observation, reward, cost, terminated, truncated, info = env.step(action)

``reward`` and ``cost`` are Python floats (cost 0.0 where the task has none),
``terminated`` and ``truncated`` Python bools. Vector observations are float32,
pixel observations uint8 of shape (height, width, 3).
"""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces

StepResult = tuple[Any, float, float, bool, bool, dict]


class SafeEnv:
    """Base class: the unified step API around an inner object."""

    observation_space: spaces.Space
    action_space: spaces.Space

    def reset(self, seed: int | None = None) -> tuple[Any, dict]:
        raise NotImplementedError

    def step(self, action) -> StepResult:
        raise NotImplementedError

    def render(self):
        raise NotImplementedError

    def close(self) -> None:
        pass

    @property
    def unwrapped(self):
        return self


class GymnasiumEnv(SafeEnv):
    """Adapts a gymnasium env (5-tuple) or safety-gymnasium env (6-tuple).

    A 5-tuple env's cost is ``info['cost']`` when present, else 0. Dict or
    tuple observations are flattened into one float32 vector.
    """

    def __init__(self, env, returns_cost: bool):
        self._env = env
        self._returns_cost = returns_cost
        space = env.observation_space
        self._flatten = not isinstance(space, spaces.Box)
        if self._flatten:
            space = spaces.flatten_space(space)
        self._inner_observation_space = env.observation_space
        self.observation_space = spaces.Box(
            space.low.astype(np.float32), space.high.astype(np.float32), space.shape, np.float32
        )
        self.action_space = env.action_space

    def _observation(self, observation) -> np.ndarray:
        if self._flatten:
            observation = spaces.flatten(self._inner_observation_space, observation)
        return np.asarray(observation, dtype=np.float32)

    def reset(self, seed=None):
        observation, info = self._env.reset(seed=seed)
        return self._observation(observation), info

    def step(self, action):
        if self._returns_cost:
            observation, reward, cost, terminated, truncated, info = self._env.step(action)
        else:
            observation, reward, terminated, truncated, info = self._env.step(action)
            cost = info.get("cost", 0.0)
        return (
            self._observation(observation),
            float(reward),
            float(cost),
            bool(terminated),
            bool(truncated),
            info,
        )

    def render(self):
        return self._env.render()

    def close(self):
        self._env.close()

    @property
    def unwrapped(self):
        return self._env.unwrapped


class Wrapper(SafeEnv):
    """Forwards everything to ``env``; subclasses override what they change."""

    def __init__(self, env: SafeEnv):
        self.env = env
        self.observation_space = env.observation_space
        self.action_space = env.action_space

    def reset(self, seed=None):
        return self.env.reset(seed=seed)

    def step(self, action):
        return self.env.step(action)

    def render(self):
        return self.env.render()

    def close(self):
        self.env.close()

    @property
    def unwrapped(self):
        return self.env.unwrapped


class ActionRepeat(Wrapper):
    """Repeats each action ``repeat`` times; reward and cost are summed.

    The repetition stops early when the episode ends. ``info['env_steps']``
    counts the inner steps taken.
    """

    def __init__(self, env: SafeEnv, repeat: int):
        if repeat < 1:
            raise ValueError(f"action_repeat must be >= 1, got {repeat}")
        super().__init__(env)
        self.repeat = repeat

    def step(self, action):
        total_reward = total_cost = 0.0
        steps = 0
        while steps < self.repeat:
            observation, reward, cost, terminated, truncated, info = self.env.step(action)
            steps += 1
            total_reward += reward
            total_cost += cost
            if terminated or truncated:
                break
        info["env_steps"] = steps
        return observation, total_reward, total_cost, terminated, truncated, info


class NormalizeActions(Wrapper):
    """Exposes a bounded Box action space as [-1, 1] and rescales actions back."""

    def __init__(self, env: SafeEnv):
        super().__init__(env)
        space = env.action_space
        self._low = space.low.astype(np.float64)
        self._high = space.high.astype(np.float64)
        self.action_space = spaces.Box(-1.0, 1.0, space.shape, np.float32)

    @staticmethod
    def needed(space: spaces.Space) -> bool:
        """True for a bounded Box action space that is not already [-1, 1]."""
        if not isinstance(space, spaces.Box) or not space.is_bounded():
            return False
        return not (np.all(space.low == -1.0) and np.all(space.high == 1.0))

    def step(self, action):
        action = np.clip(np.asarray(action, np.float64), -1.0, 1.0)
        return self.env.step(self._low + (action + 1.0) * 0.5 * (self._high - self._low))


class PixelObservation(Wrapper):
    """Replaces the observation by the rendered RGB image of ``size`` x ``size``.

    The inner env must have been made with ``render_mode='rgb_array'``; frames
    of another size are resized (nearest-neighbour area sampling keeps it cheap).
    The flat observation stays available as ``info['vector_observation']``.
    """

    def __init__(self, env: SafeEnv, size: int = 64):
        super().__init__(env)
        self.size = size
        self.observation_space = spaces.Box(0, 255, (size, size, 3), np.uint8)

    def _pixels(self) -> np.ndarray:
        frame = np.asarray(self.env.render())
        if frame.shape[:2] != (self.size, self.size):
            frame = resize_image(frame, self.size)
        return np.ascontiguousarray(frame[..., :3], dtype=np.uint8)

    def reset(self, seed=None):
        vector, info = self.env.reset(seed=seed)
        info["vector_observation"] = vector
        return self._pixels(), info

    def step(self, action):
        vector, reward, cost, terminated, truncated, info = self.env.step(action)
        info["vector_observation"] = vector
        return self._pixels(), reward, cost, terminated, truncated, info


def resize_image(frame: np.ndarray, size: int) -> np.ndarray:
    """Resizes an (H, W, C) uint8 image to (size, size, C) with bilinear filtering."""
    from PIL import Image

    return np.asarray(Image.fromarray(frame).resize((size, size), Image.BILINEAR))


def time_limit(env: gymnasium.Env, max_episode_steps: int) -> gymnasium.Env:
    """Sets or replaces the episode length of a gymnasium env."""
    if isinstance(env, gymnasium.wrappers.TimeLimit):
        env = env.env
    return gymnasium.wrappers.TimeLimit(env, max_episode_steps)
