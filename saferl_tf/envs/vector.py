"""Several environments stepped together, in this process or in worker processes.

A ``VectorEnv`` steps ``num_envs`` environments with one batched call and
resets each one as soon as its episode ends::

    envs = make_vector("sgym_Safexp-PointGoal2-v0", num_envs=2, seed=0)
    observation = envs.reset()                 # [N, *obs_shape]
    step = envs.step(actions)                  # actions: [N, *action_shape]
    step.observation                           # [N, ...] what each action led to
    step.next_observation                      # [N, ...] where to act next: the
                                               # first observation of the new
                                               # episode where one ended

``ParallelEnvs`` runs each environment in its own process, so a slow
``reset()`` (about 1.1 s for safety-gymnasium) in one worker overlaps with the
steps and resets of the others. Workers are started with 'spawn' (never fork a
process that may hold TensorFlow state) and ignore SIGINT, so that Ctrl-C
reaches only the training loop, which saves a checkpoint and closes them.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import importlib.util
import multiprocessing
import signal
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from saferl_tf.envs import registry
from saferl_tf.envs.make import make
from saferl_tf.envs.wrappers import SafeEnv


@dataclasses.dataclass
class VectorStep:
    """One batched step. Arrays have a leading axis of size ``num_envs``."""

    observation: np.ndarray
    reward: np.ndarray  # float32
    cost: np.ndarray  # float32
    terminated: np.ndarray  # bool
    truncated: np.ndarray  # bool
    env_steps: np.ndarray  # int64: inner environment steps (action repeat)
    next_observation: np.ndarray
    infos: list[dict]

    @property
    def done(self) -> np.ndarray:
        return self.terminated | self.truncated


class VectorEnv:
    """Interface shared by ``SerialEnvs`` and ``ParallelEnvs``."""

    num_envs: int
    observation_space: Any
    action_space: Any

    def reset(self) -> np.ndarray:
        raise NotImplementedError

    def step(self, actions: np.ndarray) -> VectorStep:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


def _step_and_autoreset(env: SafeEnv, action) -> tuple:
    observation, reward, cost, terminated, truncated, info = env.step(action)
    next_observation = observation
    if terminated or truncated:
        next_observation, _ = env.reset()
    return (observation, reward, cost, terminated, truncated, info, next_observation)


def _stack(results: Sequence[tuple]) -> VectorStep:
    observation, reward, cost, terminated, truncated, info, next_observation = zip(*results)
    return VectorStep(
        observation=np.stack(observation),
        reward=np.asarray(reward, np.float32),
        cost=np.asarray(cost, np.float32),
        terminated=np.asarray(terminated, bool),
        truncated=np.asarray(truncated, bool),
        env_steps=np.asarray([i.get("env_steps", 1) for i in info], np.int64),
        next_observation=np.stack(next_observation),
        infos=list(info),
    )


class SerialEnvs(VectorEnv):
    """Environments stepped one after another in this process."""

    def __init__(self, env_fns: Sequence[Callable[[], SafeEnv]]):
        self._envs = [fn() for fn in env_fns]
        self.num_envs = len(self._envs)
        self.observation_space = self._envs[0].observation_space
        self.action_space = self._envs[0].action_space

    def reset(self) -> np.ndarray:
        return np.stack([env.reset()[0] for env in self._envs])

    def step(self, actions) -> VectorStep:
        return _stack([_step_and_autoreset(env, a) for env, a in zip(self._envs, actions)])

    def close(self) -> None:
        for env in self._envs:
            env.close()


def _import_registrations(modules: Sequence[tuple[str, str | None]]) -> None:
    """Imports the modules that registered ``saferl_`` environments in the parent."""
    for name, path in modules:
        if name in sys.modules:
            continue
        try:
            importlib.import_module(name)
        except ImportError:
            if path is None:
                raise
            spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)


def _registration_modules(env_id: str) -> list[tuple[str, str | None]]:
    spec = registry.parse_env_id(env_id)
    if spec.family != "saferl":
        return []
    module = sys.modules.get(registry.own_env(spec.name).factory.__module__)
    if module is None or module.__name__ == "__main__":
        return []
    return [(module.__name__, getattr(module, "__file__", None))]


def _worker(connection, env_fn, registrations=()) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    env = None
    try:
        _import_registrations(registrations)
        env = env_fn()
        connection.send(("ok", (env.observation_space, env.action_space)))
        while True:
            command, payload = connection.recv()
            if command == "step":
                connection.send(("ok", _step_and_autoreset(env, payload)))
            elif command == "reset":
                connection.send(("ok", env.reset()[0]))
            elif command == "close":
                break
    except (EOFError, KeyboardInterrupt, BrokenPipeError):
        pass
    except Exception:  # Reported to the parent, which raises it.
        try:
            connection.send(("error", traceback.format_exc()))
        except (BrokenPipeError, OSError):
            pass
    finally:
        if env is not None:
            env.close()
        connection.close()


class EnvironmentWorkerError(RuntimeError):
    pass


class ParallelEnvs(VectorEnv):
    """Each environment in its own worker process; one batched step waits for all."""

    def __init__(
        self,
        env_fns: Sequence[Callable[[], SafeEnv]],
        registrations: Sequence[tuple[str, str | None]] = (),
    ):
        """``registrations``: (module, file) pairs that workers import first, so
        that environments registered outside the package exist there too."""
        context = multiprocessing.get_context("spawn")
        self.num_envs = len(env_fns)
        self._connections = []
        self._processes = []
        for index, env_fn in enumerate(env_fns):
            parent, child = context.Pipe()
            process = context.Process(
                target=_worker, args=(child, env_fn, tuple(registrations)), name=f"saferl-env-{index}", daemon=True
            )
            process.start()
            child.close()
            self._connections.append(parent)
            self._processes.append(process)
        spaces = self._receive_all()
        self.observation_space, self.action_space = spaces[0]
        self._closed = False

    def _receive(self, index: int):
        try:
            status, payload = self._connections[index].recv()
        except (EOFError, ConnectionResetError) as error:
            self.close()
            raise EnvironmentWorkerError(f"environment worker {index} died") from error
        if status == "error":
            self.close()
            raise EnvironmentWorkerError(f"environment worker {index} failed:\n{payload}")
        return payload

    def _receive_all(self) -> list:
        return [self._receive(index) for index in range(self.num_envs)]

    def reset(self) -> np.ndarray:
        for connection in self._connections:
            connection.send(("reset", None))
        return np.stack(self._receive_all())

    def step(self, actions) -> VectorStep:
        for connection, action in zip(self._connections, actions):
            connection.send(("step", action))
        return _stack(self._receive_all())

    def close(self) -> None:
        if getattr(self, "_closed", True) and not self._processes:
            return
        for connection in self._connections:
            try:
                connection.send(("close", None))
            except (BrokenPipeError, OSError):
                pass
        for process in self._processes:
            process.join(timeout=5)
            if process.is_alive():
                process.terminate()
                process.join(timeout=1)
        for connection in self._connections:
            connection.close()
        self._connections, self._processes = [], []
        self._closed = True


def make_vector(
    env_id: str,
    num_envs: int = 1,
    *,
    seed: int = 0,
    parallel: bool | None = None,
    **make_kwargs,
) -> VectorEnv:
    """Makes ``num_envs`` copies of ``env_id``; environment i is seeded ``seed + i``.

    Args:
      parallel: worker processes (True) or this process (False); by default
        workers whenever ``num_envs > 1``.
      make_kwargs: passed to ``make`` (action_repeat, episode_length,
        observation, normalize_actions).
    """
    if num_envs < 1:
        raise ValueError(f"num_envs must be >= 1, got {num_envs}")
    # Fail fast, in this process, on a bad id or option.
    make(env_id, **make_kwargs).close()
    env_fns = [
        functools.partial(make, env_id, seed=seed + index, **make_kwargs)
        for index in range(num_envs)
    ]
    if parallel is None:
        parallel = num_envs > 1
    if not parallel:
        return SerialEnvs(env_fns)
    return ParallelEnvs(env_fns, _registration_modules(env_id))
