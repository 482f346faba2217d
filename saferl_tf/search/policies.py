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

The value a searcher sees is the return of (reward + ``reward_shift``) *
``reward_scale`` per step: the published GIBO code fits its GP to raw values
with a fixed noise, so it scales rewards to the noise's units (Swimmer r / 350;
Hopper (r - 1) / 1000, the alive bonus removed). ``info()`` keeps the raw
return beside it, and ``evaluate_iterate`` measures a searcher's current
parameters on separate episodes with the raw reward and frozen statistics
(what the published figures plot).
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
        # Where each weight and offset sits in the flat vector (tf.Module's order).
        self.set_flat(np.arange(self.size, dtype=np.float64))
        self._weight_index = self.weights.numpy().astype(np.int64)  # [O, A]
        self._bias_index = None if self.bias is None else self.bias.numpy().astype(np.int64)
        self.set_flat(np.zeros(self.size))

    def split(self, parameters: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """parameters [..., P] -> (weights [..., O, A], bias [..., A] or None)."""
        bias = None if self._bias_index is None else parameters[..., self._bias_index]
        return parameters[..., self._weight_index], bias

    def join(self, weights: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
        """The inverse of ``split``."""
        parameters = np.zeros((*weights.shape[:-2], self.size))
        parameters[..., self._weight_index] = weights
        if bias is not None:
            parameters[..., self._bias_index] = bias
        return parameters

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
                 hidden: tuple[int, ...] = (16,), bias: bool = False, reward_shift: float = 0.0,
                 reward_scale: float = 1.0, **make_kwargs):  # fmt: skip
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
        self.reward_shift, self.reward_scale = float(reward_shift), float(reward_scale)
        self.last_cost = self.last_return = 0.0
        self._linear = isinstance(policy, LinearPolicy)
        self._evaluated_under = self._statistics()

    def _std(self):
        return np.sqrt(self._m2 / max(self._count - 1, 1)) if self._count > 1 else 1.0

    def _action(self, observation: np.ndarray, statistics: tuple[np.ndarray, np.ndarray]):
        observation = observation.astype(np.float64).ravel()
        if self.normalize:
            mean, std = statistics
            observation = (observation - mean) / std
        if self._linear:  # NumPy: a TensorFlow call per step cost more than the physics.
            output = observation @ self._weights
            if self._bias is not None:
                output = output + self._bias
        else:
            output = self.policy(observation[None])[0].numpy()
        space = self.env.action_space
        if isinstance(space, spaces.Discrete):
            return int(output[0] > 0) if space.n == 2 else int(np.argmax(output))
        return np.clip(output, space.low, space.high).reshape(space.shape)

    def _update_statistics(self, observations: np.ndarray) -> None:
        # Chan et al.'s merge of the batch's moments into the running ones: the
        # same as Welford's update one observation at a time, in one step.
        count = len(observations)
        if count == 0:
            return
        batch_mean = observations.mean(0)
        batch_m2 = ((observations - batch_mean) ** 2).sum(0)
        total = self._count + count
        delta = batch_mean - self._mean
        self._mean = self._mean + delta * count / total
        self._m2 = self._m2 + batch_m2 + delta**2 * self._count * count / total
        self._count = total

    def _episode(self, seed: int) -> tuple[float, float, float, np.ndarray]:
        """One episode: (shifted and scaled return, raw return, cost, observations)."""
        observation, _ = self.env.reset(seed=seed)
        statistics = self._statistics()  # They change only after the episode.
        seen, scaled, raw, cost, done = [], 0.0, 0.0, 0.0, False
        while not done:
            seen.append(observation.astype(np.float64).ravel())
            observation, reward, step_cost, terminated, truncated, _ = self.env.step(
                self._action(observation, statistics)
            )
            raw += reward
            scaled += (reward + self.reward_shift) * self.reward_scale
            cost += step_cost
            done = terminated or truncated
        return scaled, raw, cost, np.asarray(seen)

    def _set(self, parameters) -> None:
        self.policy.set_flat(parameters)
        if self._linear:
            self._weights = self.policy.weights.numpy()
            self._bias = None if self.policy.bias is None else self.policy.bias.numpy()

    @property
    def reexpresses_parameters(self) -> bool:
        """Whether ``to_raw``/``from_raw`` apply: a linear policy with an offset on
        normalized observations (without the offset, the normalization's shift
        has no parameter to go into)."""
        return self.normalize and self._linear and self.policy.bias is not None

    def to_raw(self, parameters: np.ndarray) -> np.ndarray:
        """parameters [..., P], as evaluated last (under the statistics that
        evaluation used) -> the same policy on raw observations [..., P]:
        W (s - mu) / sigma + b = (W / sigma) s + (b - (mu / sigma) W)."""
        mean, std = self._evaluated_under
        weights, bias = self.policy.split(np.asarray(parameters, np.float64))
        raw_weights = weights / std[:, None]
        return self.policy.join(raw_weights, bias - np.einsum("o,...oa->...a", mean, raw_weights))

    def from_raw(self, raw: np.ndarray) -> np.ndarray:
        """The inverse of ``to_raw`` under the current statistics (those the next
        evaluation uses)."""
        mean, std = self._statistics()
        raw_weights, raw_bias = self.policy.split(np.asarray(raw, np.float64))
        bias = raw_bias + np.einsum("o,...oa->...a", mean, raw_weights)
        return self.policy.join(raw_weights * std[:, None], bias)

    def _statistics(self) -> tuple[np.ndarray, np.ndarray]:
        size = self._mean.shape[0]
        return self._mean.copy(), np.maximum(np.broadcast_to(self._std(), (size,)), 1e-8)

    def __call__(self, parameters) -> float:
        self._set(parameters)
        self._evaluated_under = self._statistics()
        values, returns, costs = [], [], []
        for _ in range(self.episodes):
            value, raw, cost, seen = self._episode(self.seed * 100_003 + self._episodes_run)
            self._episodes_run += 1
            values.append(value)
            returns.append(raw)
            costs.append(cost)
            if self.normalize:
                self._update_statistics(seen)
        self.last_cost, self.last_return = float(np.mean(costs)), float(np.mean(returns))
        return float(np.mean(values))

    def evaluate_iterate(self, parameters, episodes: int = 1, at: int = 0) -> dict[str, float]:
        """The raw mean return and cost of ``parameters`` on episodes of their own,
        leaving the statistics as they are. Their seeds come from (seed, ``at``,
        episode), apart from the search's: a measurement after evaluation
        ``at`` sees the same episodes whatever was measured before it."""
        self._set(parameters)
        returns, costs = [], []
        for episode in range(episodes):
            seed = int(np.random.SeedSequence([self.seed, at, episode, 17]).generate_state(1)[0])
            _, raw, cost, _ = self._episode(seed)
            returns.append(raw)
            costs.append(cost)
        return {"iterate_return": float(np.mean(returns)), "iterate_cost": float(np.mean(costs))}

    def info(self) -> dict[str, float]:
        return {"episode_return": self.last_return, "episode_cost": self.last_cost}

    def state(self) -> dict:
        return {"count": self._count, "mean": self._mean.copy(), "m2": self._m2.copy(),
                "episodes_run": self._episodes_run}  # fmt: skip

    def load_state(self, state: dict) -> None:
        self._count, self._episodes_run = state["count"], state["episodes_run"]
        self._mean, self._m2 = state["mean"].copy(), state["m2"].copy()

    def close(self) -> None:
        self.env.close()
