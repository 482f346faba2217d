"""Policies with a flat parameter view, and episode returns as search objectives.

``LinearPolicy`` and ``MLPPolicy`` are ``tf.Module``s whose weights can be read
and written as one vector (``flat`` / ``set_flat``), so any ask/tell searcher
can optimize them. ``EpisodeObjective(env_id, policy)`` maps a parameter vector
to the mean return over episodes and records the mean episode cost beside it
(``last_cost``), for safety-gymnasium tasks.

Actions: for a discrete action space the policy's first output's sign picks
between two actions (CartPole with 4 parameters, as in GIBO's experiments) or
the argmax of its outputs otherwise; for a Box the outputs are clipped to its
bounds. ``normalize=True`` standardizes observations with running statistics
(as ARS v2 and GIBO do for MuJoCo tasks); the statistics are updated from the
episodes of every evaluation.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from gymnasium import spaces


class FlatPolicy(tf.Module):
    """Base class: a function observation [B, O] -> outputs [B, A] with flat parameters."""

    def flat(self) -> np.ndarray:
        return np.concatenate([v.numpy().ravel() for v in self.trainable_variables])

    def set_flat(self, parameters) -> None:
        parameters = np.asarray(parameters, np.float64)
        if parameters.shape != (self.size,):
            raise ValueError(f"expected {self.size} parameters, got shape {parameters.shape}")
        offset = 0
        for variable in self.trainable_variables:
            count = int(np.prod(variable.shape))
            variable.assign(parameters[offset : offset + count].reshape(variable.shape))
            offset += count

    @property
    def size(self) -> int:
        return int(sum(np.prod(v.shape) for v in self.trainable_variables))


class LinearPolicy(FlatPolicy):
    def __init__(self, observation_size: int, output_size: int, bias: bool = False):
        super().__init__()
        self.weights = tf.Variable(tf.zeros([observation_size, output_size], tf.float64))
        self.bias = tf.Variable(tf.zeros([output_size], tf.float64)) if bias else None

    def __call__(self, observation):
        output = tf.convert_to_tensor(observation, tf.float64) @ self.weights
        return output + self.bias if self.bias is not None else output


class MLPPolicy(FlatPolicy):
    def __init__(self, observation_size: int, output_size: int, hidden: tuple[int, ...] = (16,),
                 seed: int = 0):  # fmt: skip
        super().__init__()
        rng = np.random.default_rng(seed)
        sizes = [observation_size, *hidden, output_size]
        self.layers = [
            (tf.Variable(rng.normal(0, 1 / np.sqrt(a), (a, b))), tf.Variable(np.zeros(b)))
            for a, b in zip(sizes[:-1], sizes[1:])
        ]

    def __call__(self, observation):
        output = tf.convert_to_tensor(observation, tf.float64)
        for index, (weights, bias) in enumerate(self.layers):
            output = output @ weights + bias
            if index < len(self.layers) - 1:
                output = tf.tanh(output)
        return output


def policy_outputs(action_space: spaces.Space) -> int:
    if isinstance(action_space, spaces.Discrete):
        return 1 if action_space.n == 2 else int(action_space.n)
    return int(np.prod(action_space.shape))


class EpisodeObjective:
    """parameters -> mean episode return of a flat policy on ``env_id`` (to maximize).

    ``policy`` is a ``FlatPolicy`` or the name of one ("linear", "mlp" with
    ``hidden`` layers); ``bias`` adds an offset to a linear policy. Episode k
    (counted over the objective's life) resets with seed ``seed * 100003 + k``,
    so a resumed search sees the episodes the uninterrupted one would have.
    ``info()`` holds the mean episode cost of the last evaluation.
    """

    def __init__(self, env_id: str, policy: FlatPolicy | str | None = None,
                 episodes: int = 1, normalize: bool = False, seed: int = 0,
                 hidden: tuple[int, ...] = (16,), bias: bool = False, **make_kwargs):  # fmt: skip
        from saferl_tf.envs import make

        self.env = make(env_id, seed=seed, **make_kwargs)
        self.name = env_id
        size = int(np.prod(self.env.observation_space.shape))
        outputs = policy_outputs(self.env.action_space)
        if policy is None or policy == "linear":
            policy = LinearPolicy(size, outputs, bias=bias)
        elif policy == "mlp":
            policy = MLPPolicy(size, outputs, hidden=tuple(hidden), seed=seed)
        self.policy = policy
        self.dimension = policy.size
        self.initial = policy.flat()  # Zeros for a linear policy, the seeded init for an MLP.
        self.bounds = None
        self.episodes = episodes
        self.normalize = normalize
        self.seed = seed
        self._count, self._mean, self._m2 = 0, np.zeros(size), np.zeros(size)
        self._episodes_run = 0
        self.last_cost = 0.0

    def _action(self, observation: np.ndarray):
        observation = observation.astype(np.float64).ravel()
        if self.normalize:
            std = np.sqrt(self._m2 / max(self._count - 1, 1)) if self._count > 1 else 1.0
            observation = (observation - self._mean) / np.maximum(std, 1e-8)
        output = self.policy(observation[None])[0].numpy()
        space = self.env.action_space
        if isinstance(space, spaces.Discrete):
            return int(output[0] > 0) if space.n == 2 else int(np.argmax(output))
        return np.clip(output, space.low, space.high).reshape(space.shape)

    def _update_statistics(self, observations: np.ndarray) -> None:
        for observation in observations:  # Welford's running mean and variance.
            self._count += 1
            delta = observation - self._mean
            self._mean += delta / self._count
            self._m2 += delta * (observation - self._mean)

    def __call__(self, parameters) -> float:
        self.policy.set_flat(parameters)
        returns, costs = [], []
        for _ in range(self.episodes):
            observation, _ = self.env.reset(seed=self.seed * 100_003 + self._episodes_run)
            self._episodes_run += 1
            seen, total_return, total_cost, done = [], 0.0, 0.0, False
            while not done:
                seen.append(observation.astype(np.float64).ravel())
                observation, reward, cost, terminated, truncated, _ = self.env.step(
                    self._action(observation)
                )
                total_return += reward
                total_cost += cost
                done = terminated or truncated
            returns.append(total_return)
            costs.append(total_cost)
            if self.normalize:
                self._update_statistics(np.asarray(seen))
        self.last_cost = float(np.mean(costs))
        return float(np.mean(returns))

    def info(self) -> dict[str, float]:
        return {"episode_cost": self.last_cost}

    def state(self) -> dict:
        return {"count": self._count, "mean": self._mean.copy(), "m2": self._m2.copy(),
                "episodes_run": self._episodes_run}  # fmt: skip

    def load_state(self, state: dict) -> None:
        self._count, self._episodes_run = state["count"], state["episodes_run"]
        self._mean, self._m2 = state["mean"].copy(), state["m2"].copy()

    def close(self) -> None:
        self.env.close()
