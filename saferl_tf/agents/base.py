"""The agent contract and the agent registry.

Every launcher drives an agent through this call sequence::

    agent = make_agent("random", observation_space, action_space, config,
                       logger=logger, directory=run_dir, num_envs=N, seed=0,
                       task=envs.task_functions(env_id))   # known reward/cost or None
    action = agent.act(observation, explore=True, is_first=is_first)
        # observation [N, *obs_shape] -> action [N, *action_shape], NumPy
    agent.observe(Transition(observation, action, reward, cost,
                             next_observation, terminated, truncated))
    metrics = agent.update()        # 0..n compiled train steps on the agent's
                                    # own schedule; {name: float}; between steps
                                    # it asks agent.control whether to stop
    agent.save(directory); agent.restore(directory)

``explore=False`` asks for the deterministic (evaluation) policy. ``is_first``
([N] bool) marks observations that start an episode, so that recurrent agents
reset their state there; they keep separate state for exploring and for
evaluating. The training loop checkpoints ``agent`` (a ``tf.Module``) together
with its own counters; ``before_checkpoint`` and ``after_restore`` move NumPy
state (random generators, replay bookkeeping) into and out of variables.

A new method subclasses ``Agent`` (or an existing agent), declares its
``Config`` dataclass and registers itself::

    @register_agent("my_agent")
    class MyAgent(Agent):
        @dataclasses.dataclass
        class Config(AgentConfig):
            learning_rate: float = 1e-3

        def _act(self, observation, explore, is_first): ...
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import tensorflow as tf
from gymnasium import spaces

from saferl_tf.checkpoints import restore_newest
from saferl_tf.config import AgentConfig
from saferl_tf.data.replay import EpisodeReplay
from saferl_tf.errors import ConfigError, UnknownNameError, did_you_mean


class UpdateControl:
    """What the training loop lends an agent while ``update()`` runs.

    An agent whose ``update()`` runs many train steps checks ``should_stop()``
    between them (so that SIGINT/SIGTERM stop a run within one step, not one
    round) and calls ``report(done, total)`` after each (so that progress moves
    during long rounds). This default never stops and shows nothing.
    """

    def should_stop(self) -> bool:
        return False

    def report(self, done: int, total: int) -> None:
        """``done`` of ``total`` train steps of the current round are finished."""


@dataclasses.dataclass
class Transition:
    """One step of ``num_envs`` environments; every field has leading axis N."""

    observation: np.ndarray
    action: np.ndarray
    reward: np.ndarray
    cost: np.ndarray
    next_observation: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray


class Agent(tf.Module):
    """Base class of all agents: checks inputs, owns replay and random state.

    Subclasses implement ``_act`` and usually ``_update`` (and may extend
    ``_observe``). Public methods take and return NumPy arrays and check
    shapes; the private ones may call compiled TensorFlow steps.
    """

    Config: ClassVar[type] = AgentConfig
    registered_name: ClassVar[str | None] = None

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        config: AgentConfig | None = None,
        *,
        logger=None,
        directory: str | Path | None = None,
        num_envs: int = 1,
        seed: int = 0,
        task=None,
    ):
        super().__init__(name=type(self).__name__)
        if config is None:
            config = self.Config()
        if not isinstance(config, self.Config):
            raise TypeError(
                f"{type(self).__name__} needs a {self.Config.__name__}, got {type(config).__name__}"
            )
        self.config = config
        self.observation_space = observation_space
        self.action_space = action_space
        self.num_envs = num_envs
        self.logger = logger
        self.seed = seed
        # The environment's known reward/cost functions (``envs.TaskFunctions``)
        # where it has them; agents that plan with them read this.
        self.task = task
        self.rng = np.random.default_rng(seed)
        self.control = UpdateControl()  # The training loop lends its own.
        replay_dir = Path(directory) / "replay" if directory is not None else None
        self.replay = EpisodeReplay(replay_dir, config.replay_capacity, num_envs, seed=seed + 1)
        self.num_steps = 0  # Transitions observed (agent steps, all environments).
        # NumPy state that a checkpoint carries, as variables.
        self._saved_steps = tf.Variable(0, dtype=tf.int64, trainable=False)
        self._saved_replay = tf.Variable([0, 0], dtype=tf.int64, trainable=False)
        self._saved_rng = tf.Variable("", dtype=tf.string, trainable=False)

    def _require_box_actions_and_vector_observations(self) -> None:
        """ConfigError unless actions are a Box and observations flat vectors
        (the agents whose networks or models read [N, D] observations)."""
        observation_space, action_space = self.observation_space, self.action_space
        if not isinstance(action_space, spaces.Box) or len(observation_space.shape) != 1:
            raise ConfigError(
                f"{type(self).__name__} needs a Box action space and flat (vector) observations, "
                f"got {action_space} and observation shape {observation_space.shape}"
            )

    # --- The contract -------------------------------------------------------

    def act(
        self, observation: np.ndarray, explore: bool = True, is_first: np.ndarray | None = None
    ) -> np.ndarray:
        """Actions for a batch of observations ([N, *obs_shape] -> [N, *act_shape])."""
        observation = np.asarray(observation)
        self._check_batch("observation", observation, self.observation_space.shape)
        batch = observation.shape[0]
        is_first = np.zeros(batch, bool) if is_first is None else np.asarray(is_first, bool)
        if is_first.shape != (batch,):
            raise ValueError(f"is_first must have shape ({batch},), got {is_first.shape}")
        action = np.asarray(self._act(observation, explore, is_first))
        self._check_batch("action", action, self.action_space.shape, batch)
        return action

    def observe(self, transition: Transition) -> None:
        """Records one batched step (stored in replay) and lets the agent react."""
        self._check_batch("observation", transition.observation, self.observation_space.shape)
        batch = transition.observation.shape[0]
        self._check_batch("next_observation", transition.next_observation,
                          self.observation_space.shape, batch)  # fmt: skip
        self._check_batch("action", np.asarray(transition.action), self.action_space.shape, batch)
        for name in ("reward", "cost", "terminated", "truncated"):
            self._check_batch(name, np.asarray(getattr(transition, name)), (), batch)
        self.replay.add(
            transition.observation,
            transition.action,
            transition.reward,
            transition.cost,
            transition.next_observation,
            transition.terminated,
            transition.truncated,
        )
        self.num_steps += batch
        self._observe(transition)

    def update(self) -> dict[str, float]:
        """Runs the train steps that are due; returns their metrics as floats."""
        return {name: float(value) for name, value in self._update().items()}

    # --- For subclasses -----------------------------------------------------

    def _act(self, observation: np.ndarray, explore: bool, is_first: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _observe(self, transition: Transition) -> None:
        """Hook after a transition is stored; the default does nothing."""

    def _update(self) -> dict[str, Any]:
        return {}

    @classmethod
    def wants_task_observation(cls, config: AgentConfig) -> bool:
        """Whether the environment should add what its known task functions need
        to the observation (``envs.make(task_observation=True)``)."""
        return False

    @classmethod
    def episode_cost_limit(cls, config: AgentConfig, episode_length: float) -> float | None:
        """The cost an episode of ``episode_length`` environment steps may have
        under ``config.cost_limit`` (``saferl-evaluate`` checks it). The limit
        refers to ``config.episode_length`` steps where the config has that
        setting (scaled to the episode), else to one episode; None: no limit."""
        steps = getattr(config, "episode_length", None)
        if steps:
            return config.cost_limit * episode_length / steps
        return config.cost_limit

    @classmethod
    def cpu_hint(cls, config: AgentConfig) -> str | None:
        """A line for users without a GPU when ``config`` is sized for one
        (expected speed, and the preset to use instead); None when it is not."""
        return None

    # --- Checkpoints --------------------------------------------------------

    def before_checkpoint(self) -> None:
        """Writes NumPy-side state into variables (call before saving)."""
        self.replay.flush()
        self._saved_steps.assign(self.num_steps)
        self._saved_replay.assign([self.replay.num_chunks, self.replay.num_episodes])
        state = {
            "agent": self.rng.bit_generator.state,
            "replay": self.replay.rng.bit_generator.state,
        }
        self._saved_rng.assign(json.dumps(state))

    def after_restore(self) -> None:
        """Rebuilds NumPy-side state from restored variables (call after restoring)."""
        self.num_steps = int(self._saved_steps.numpy())
        num_chunks, num_episodes = (int(v) for v in self._saved_replay.numpy())
        self.replay.load(num_chunks, num_episodes)
        saved = self._saved_rng.numpy().decode()
        if saved:
            state = json.loads(saved)
            self.rng.bit_generator.state = state["agent"]
            self.replay.rng.bit_generator.state = state["replay"]

    def save(self, directory: str | Path) -> str:
        """Saves a checkpoint of this agent alone; returns its path."""
        self.before_checkpoint()
        manager = tf.train.CheckpointManager(tf.train.Checkpoint(agent=self), str(directory), 3)
        return manager.save()

    def restore(self, directory: str | Path) -> bool:
        """Restores the newest checkpoint in ``directory``; False if there is none."""
        if restore_newest(tf.train.Checkpoint(agent=self), directory) is None:
            return False
        self.after_restore()
        return True

    # --- Helpers ------------------------------------------------------------

    def _to_space(self, unit: np.ndarray) -> np.ndarray:
        """[-1, 1] actions to a Box action space's bounds (unbounded dims pass)."""
        space = self.action_space
        low, high = space.low.reshape(-1), space.high.reshape(-1)
        finite = np.isfinite(low) & np.isfinite(high)
        scaled = np.where(finite, low + (unit + 1.0) * 0.5 * (high - low), unit)
        return scaled.reshape(unit.shape[0], *space.shape).astype(space.dtype)

    def _from_space(self, action: np.ndarray) -> np.ndarray:
        """Box actions to [-1, 1] (unbounded dims pass, clipped)."""
        space = self.action_space
        low, high = space.low.reshape(-1), space.high.reshape(-1)
        flat = action.reshape(*action.shape[: action.ndim - len(space.shape)], -1)
        finite = np.isfinite(low) & np.isfinite(high)
        unit = np.where(finite, 2.0 * (flat - low) / np.where(finite, high - low, 1.0) - 1.0, flat)
        return np.clip(unit, -1.0, 1.0).astype(np.float32)

    def _check_batch(self, name, array, item_shape, batch: int | None = None) -> None:
        item_shape = tuple(item_shape or ())
        if array.ndim != len(item_shape) + 1 or tuple(array.shape[1:]) != item_shape:
            raise ValueError(
                f"{type(self).__name__}: {name} must have shape [batch, "
                f"{', '.join(map(str, item_shape))}], got {array.shape}"
            )
        if batch is not None and array.shape[0] != batch:
            raise ValueError(f"{name} has batch {array.shape[0]}, expected {batch}")


# --- Registry ---------------------------------------------------------------

_AGENTS: dict[str, type[Agent]] = {}


def register_agent(name: str) -> Callable[[type[Agent]], type[Agent]]:
    """Class decorator: ``--agent=name`` and ``make_agent(name, ...)`` find the class."""

    def decorate(cls: type[Agent]) -> type[Agent]:
        if not (isinstance(cls, type) and issubclass(cls, Agent)):
            raise TypeError(f"@register_agent({name!r}) needs a subclass of Agent, got {cls!r}")
        existing = _AGENTS.get(name)
        if existing is not None and existing.__qualname__ != cls.__qualname__:
            raise ValueError(f"agent name {name!r} is already taken by {existing.__qualname__}")
        cls.registered_name = name
        _AGENTS[name] = cls
        return cls

    return decorate


def registered_agents() -> list[str]:
    return sorted(_AGENTS)


def agent_class(name: str) -> type[Agent]:
    """The class registered as ``name``, or a one-line UnknownNameError."""
    if name not in _AGENTS:
        raise UnknownNameError(
            f"unknown agent {name!r}{did_you_mean(name, _AGENTS)}; "
            f"accepted: {', '.join(registered_agents())} "
            "(register your own with @saferl_tf.agents.register_agent)"
        )
    return _AGENTS[name]


def preset_names(cls: type[Agent]) -> list[str]:
    """Registered names along the class's ancestry, most specific first."""
    return [c.registered_name for c in cls.__mro__ if getattr(c, "registered_name", None)]


def make_agent(
    name: str,
    observation_space: spaces.Space,
    action_space: spaces.Space,
    config: AgentConfig | None = None,
    **kwargs,
) -> Agent:
    """Builds the agent registered as ``name`` (see the module docstring)."""
    return agent_class(name)(observation_space, action_space, config, **kwargs)
