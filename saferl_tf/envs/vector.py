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

``ParallelEnvs`` runs environments in their own processes, so a slow
``reset()`` (about 1.1 s for safety-gymnasium) in one worker overlaps with the
steps and resets of the others. Workers are started with 'spawn' (never fork a
process that may hold TensorFlow state) and ignore SIGINT and SIGTERM, so that
only the training loop acts on them: it saves a checkpoint and closes them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib
import importlib.util
import multiprocessing
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from saferl_tf.envs import registry, rendering
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
        self._envs = []


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


def _receive_spinning(connection, spin: float):
    """``connection.recv()``, polling for up to ``spin`` seconds before blocking.

    A process that blocks on a pipe lets its core idle; waking it again costs
    far more than a step's worth of polling on a virtual machine, and lockstep
    stepping pays that twice per step. Polling only while a reply is due soon
    keeps both ends awake (see docs/BENCHMARKS.md).
    """
    if spin > 0:
        deadline = time.perf_counter() + spin
        while time.perf_counter() < deadline:
            if connection.poll():
                break
    return connection.recv()


def _worker(connection, env_fn, registrations=(), spin: float = 0.0) -> None:
    # Ctrl-C and a scheduler's SIGTERM reach the whole process group; only the
    # training loop acts on them (it checkpoints, then closes the workers). A
    # worker whose parent is gone sees its pipe close and exits.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    rendering.mark_env_worker()
    env = None
    try:
        _import_registrations(registrations)
        env = env_fn()
        connection.send(("ok", (env.observation_space, env.action_space)))
        while True:
            command, payload = _receive_spinning(connection, spin)
            if command == "step":
                connection.send(("ok", _step_and_autoreset(env, payload)))
            elif command == "reset":
                connection.send(("ok", env.reset()[0]))
            elif command == "close":
                break
    except (EOFError, KeyboardInterrupt, BrokenPipeError):
        pass
    except Exception:  # Reported to the parent, which raises it.
        with contextlib.suppress(BrokenPipeError, OSError):
            connection.send(("error", traceback.format_exc()))
    finally:
        if env is not None:
            env.close()
        connection.close()


class EnvironmentWorkerError(RuntimeError):
    pass


class ParallelEnvs(VectorEnv):
    """Environments in worker processes, with ``local`` of them in this process.

    One batched step sends the workers their actions, steps the local
    environments meanwhile, then collects the workers' results. Stepping one
    environment here (the default) keeps this process busy while the workers
    run, instead of idling on a pipe: on a 2-core machine two environments use
    two processes, not three, and the latency of waking a worker is hidden
    behind the local step.
    """

    def __init__(
        self,
        env_fns: Sequence[Callable[[], SafeEnv]],
        registrations: Sequence[tuple[str, str | None]] = (),
        local: int = 1,
        spin: float | None = None,
    ):
        """``registrations``: (module, file) pairs that workers import first, so
        that environments registered outside the package exist there too.
        ``local``: how many of the environments (the first ones) run here.
        ``spin``: seconds each side polls for the other's message before
        blocking; by default 2 ms when every process has a core of its own,
        else 0 (polling would then take a core from another process)."""
        if not 0 <= local <= len(env_fns):
            raise ValueError(f"local must be in [0, {len(env_fns)}], got {local}")
        context = multiprocessing.get_context("spawn")
        self.num_envs = len(env_fns)
        if spin is None:
            processes = len(env_fns) - local + 1
            spin = 0.002 if processes <= (os.cpu_count() or 1) else 0.0
        self._spin = spin
        self._local: list[SafeEnv] = []
        self._connections = []
        self._processes = []
        self._closed = False
        for index, env_fn in enumerate(env_fns[local:], start=local):
            parent, child = context.Pipe()
            process = context.Process(
                target=_worker,
                args=(child, env_fn, tuple(registrations), spin),
                name=f"saferl-env-{index}",
                daemon=True,
            )
            process.start()
            child.close()
            self._connections.append(parent)
            self._processes.append(process)
        try:
            self._local = [env_fn() for env_fn in env_fns[:local]]
            spaces = [(env.observation_space, env.action_space) for env in self._local]
            spaces += self._receive_all()
        except BaseException:
            self.close()
            raise
        self.observation_space, self.action_space = spaces[0]

    def _receive(self, worker: int):
        try:
            status, payload = _receive_spinning(self._connections[worker], self._spin)
        except (EOFError, ConnectionResetError) as error:
            self.close()
            index = worker + len(self._local)
            raise EnvironmentWorkerError(f"environment worker {index} died") from error
        if status == "error":
            self.close()
            index = worker + len(self._local)
            raise EnvironmentWorkerError(f"environment worker {index} failed:\n{payload}")
        return payload

    def _receive_all(self) -> list:
        return [self._receive(worker) for worker in range(len(self._connections))]

    def reset(self) -> np.ndarray:
        for connection in self._connections:
            connection.send(("reset", None))
        local = [env.reset()[0] for env in self._local]
        return np.stack(local + self._receive_all())

    def step(self, actions) -> VectorStep:
        num_local = len(self._local)
        for connection, action in zip(self._connections, actions[num_local:]):
            connection.send(("step", action))
        local = [_step_and_autoreset(env, a) for env, a in zip(self._local, actions)]
        return _stack(local + self._receive_all())

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for connection in self._connections:
            with contextlib.suppress(BrokenPipeError, OSError):
                connection.send(("close", None))
        for process in self._processes:
            process.join(timeout=5)
            if process.is_alive():
                process.terminate()
                process.join(timeout=1)
        for connection in self._connections:
            connection.close()
        for env in self._local:
            env.close()


def make_vector(
    env_id: str,
    num_envs: int = 1,
    *,
    seed: int = 0,
    parallel: bool | None = None,
    local: int = 1,
    episode_seeds: Sequence[int] | None = None,
    **make_kwargs,
) -> VectorEnv:
    """Makes ``num_envs`` copies of ``env_id``; environment i is seeded ``seed + i``.

    Args:
      parallel: worker processes (True) or this process (False); by default
        workers whenever ``num_envs > 1``.
      local: with workers, how many environments this process steps itself.
      episode_seeds: instead of ``seed``, a seed per episode: environment i
        resets with ``episode_seeds[i]``, ``episode_seeds[i + num_envs]``, ...
        (each environment runs its episodes in order, so episode k sees the
        same seed whatever ``num_envs`` is).
      make_kwargs: passed to ``make`` (action_repeat, episode_length,
        observation, normalize_actions, task_observation).
    """
    if num_envs < 1:
        raise ValueError(f"num_envs must be >= 1, got {num_envs}")
    # Fail fast, in this process, on a bad id or option.
    make(env_id, **make_kwargs).close()
    if episode_seeds is None:
        seeds = [{"seed": seed + index} for index in range(num_envs)]
    else:  # Environment i plays episodes i, i + N, i + 2N, ... in turn.
        seeds = [{"episode_seeds": list(episode_seeds)[index::num_envs]}
                 for index in range(num_envs)]  # fmt: skip
    env_fns = [functools.partial(make, env_id, **seeds[index], **make_kwargs)
               for index in range(num_envs)]  # fmt: skip
    if parallel is None:
        parallel = num_envs > 1
    if not parallel:
        return SerialEnvs(env_fns)
    return ParallelEnvs(env_fns, _registration_modules(env_id), local=min(local, num_envs))
