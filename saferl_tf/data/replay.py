"""Episode replay: complete episodes on disk, batches of sequences or transitions.

``EpisodeReplay`` collects the steps of ``num_envs`` environments. When an
episode ends it becomes a *chunk* that is kept in memory and written to
``directory`` as a compressed ``.npz``. ``flush()`` (called before every
checkpoint) also writes the unfinished parts of running episodes as chunks, so
that a resumed run gets back every step collected before its checkpoint.

A chunk of T steps holds::

    observation  [T + 1, *obs_shape]   o_0 .. o_T
    action       [T, *action_shape]    a_t taken at o_t
    reward       [T]                   r_t, cost c_t: received for a_t
    cost         [T]
    terminated   [T]                   True where o_{t+1} is terminal
    first        scalar bool           o_0 starts an episode

Batches (NumPy, one leading batch axis ``B``)::

    sample_transitions(B)    observation, action, reward, cost, terminated,
                             next_observation: [B, ...]
    sample_sequences(B, L)   observation, action, reward, cost, terminated,
                             is_first, next_observation: [B, L, ...]  (transition-aligned: the
                             action at t is taken at observation t)

Memory is bounded by ``capacity`` steps (oldest chunks are dropped from
memory, never from disk).
"""

from __future__ import annotations

import dataclasses
import io
import logging
import os
import re
from collections import deque
from pathlib import Path

import numpy as np

_FILE = re.compile(r"^(?P<index>\d{8})-(?P<length>\d+)\.npz$")
ORPHANED = "orphaned"


@dataclasses.dataclass
class Chunk:
    """Consecutive steps of one episode (see the module docstring)."""

    observation: np.ndarray
    action: np.ndarray
    reward: np.ndarray
    cost: np.ndarray
    terminated: np.ndarray
    first: bool

    def __len__(self) -> int:
        return len(self.action)

    def save(self, path: Path) -> None:
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **dataclasses.asdict(self))
        temporary = path.with_suffix(".tmp")
        temporary.write_bytes(buffer.getvalue())
        os.replace(temporary, path)  # A killed run never leaves half a file.

    @classmethod
    def load(cls, path: Path) -> Chunk:
        with np.load(path) as data:
            fields = {name: data[name] for name in data.files}
        fields["first"] = bool(fields["first"])
        return cls(**fields)


class _Running:
    """The steps of one environment's current episode, not yet a chunk."""

    def __init__(self):
        self.clear(first=True)

    def clear(self, first: bool) -> None:
        self.observation: list[np.ndarray] = []
        self.action: list[np.ndarray] = []
        self.reward: list[float] = []
        self.cost: list[float] = []
        self.terminated: list[bool] = []
        self.first = first

    def to_chunk(self) -> Chunk:
        return Chunk(
            observation=np.stack(self.observation),
            action=np.stack(self.action),
            reward=np.asarray(self.reward, np.float32),
            cost=np.asarray(self.cost, np.float32),
            terminated=np.asarray(self.terminated, bool),
            first=self.first,
        )


class EpisodeReplay:
    """Episodes of ``num_envs`` environments, in memory and on disk.

    Args:
      directory: where chunks are written; None keeps them in memory only.
      capacity: the most steps kept in memory.
      num_envs: how many environments ``add`` receives steps from.
      seed: seeds the sampling generator (``rng``, part of a checkpoint).
    """

    def __init__(
        self,
        directory: str | Path | None = None,
        capacity: int = 1_000_000,
        num_envs: int = 1,
        seed: int = 0,
    ):
        if capacity < 1:
            raise ValueError(f"replay capacity must be >= 1 step, got {capacity}")
        self.directory = Path(directory) if directory is not None else None
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
        self.capacity = capacity
        self.rng = np.random.default_rng(seed)
        self._chunks: deque[Chunk] = deque()
        self._num_steps = 0
        self.num_chunks = 0  # Chunks ever stored: the index of the next file.
        self.num_episodes = 0  # Finished episodes ever stored.
        self._running = [_Running() for _ in range(num_envs)]

    # --- Adding -------------------------------------------------------------

    def add(
        self,
        observation: np.ndarray,
        action: np.ndarray,
        reward: np.ndarray,
        cost: np.ndarray,
        next_observation: np.ndarray,
        terminated: np.ndarray,
        truncated: np.ndarray,
    ) -> None:
        """Adds one step of every environment; arrays are batched [num_envs, ...].

        ``next_observation`` is what the action led to (the final observation
        where an episode ended). The next call's ``observation`` for an
        environment whose episode ended is the first of its new episode.
        """
        for index, running in enumerate(self._running):
            if not running.observation:
                running.observation.append(np.asarray(observation[index]))
            running.action.append(np.asarray(action[index]))
            running.reward.append(float(reward[index]))
            running.cost.append(float(cost[index]))
            running.terminated.append(bool(terminated[index]))
            running.observation.append(np.asarray(next_observation[index]))
            if terminated[index] or truncated[index]:
                self._store(running.to_chunk(), finished=True)
                running.clear(first=True)

    def flush(self) -> None:
        """Stores the unfinished part of every running episode as a chunk."""
        for running in self._running:
            if running.action:
                self._store(running.to_chunk(), finished=False)
                running.clear(first=False)

    def abandon_running(self) -> None:
        """Forgets unfinished episodes (after a resume, environments start anew)."""
        for running in self._running:
            running.clear(first=True)

    def _store(self, chunk: Chunk, finished: bool) -> None:
        if self.directory is not None:
            chunk.save(self.directory / f"{self.num_chunks:08d}-{len(chunk)}.npz")
        self.num_chunks += 1
        self.num_episodes += int(finished)
        self._keep(chunk)

    def _keep(self, chunk: Chunk) -> None:
        self._chunks.append(chunk)
        self._num_steps += len(chunk)
        while self._num_steps > self.capacity and len(self._chunks) > 1:
            self._num_steps -= len(self._chunks.popleft())

    # --- Restoring ----------------------------------------------------------

    def load(self, num_chunks: int, num_episodes: int) -> None:
        """Reloads the first ``num_chunks`` chunks written to ``directory``.

        Chunks written after that (by a run killed after its last checkpoint)
        are moved to ``directory/orphaned`` rather than deleted, and the newest
        chunks that fit ``capacity`` are loaded.
        """
        self._chunks.clear()
        self._num_steps = 0
        self.abandon_running()
        self.num_chunks, self.num_episodes = num_chunks, num_episodes
        if self.directory is None or num_chunks == 0 and not any(self.directory.glob("*.npz")):
            return
        files = {}
        for path in self.directory.glob("*.npz"):
            match = _FILE.match(path.name)
            if match is None:
                continue
            index = int(match["index"])
            if index >= num_chunks:
                orphaned = self.directory / ORPHANED
                orphaned.mkdir(exist_ok=True)
                os.replace(path, orphaned / path.name)
            else:
                files[index] = (path, int(match["length"]))
        selected, steps = [], 0
        for index in sorted(files, reverse=True):
            if steps >= self.capacity:
                break
            selected.append(files[index][0])
            steps += files[index][1]
        for path in reversed(selected):
            try:
                self._keep(Chunk.load(path))
            except (OSError, ValueError, KeyError) as error:
                logging.warning("replay: skipping unreadable chunk %s (%s)", path, error)

    # --- Sampling -----------------------------------------------------------

    @property
    def num_steps(self) -> int:
        """Steps held in memory (finished chunks only)."""
        return self._num_steps

    def __len__(self) -> int:
        return self._num_steps

    def chunks(self) -> list[Chunk]:
        return list(self._chunks)

    def transitions(self) -> dict[str, np.ndarray]:
        """Every stored transition, each field [steps, ...] (call ``flush`` first
        to include running episodes)."""
        chunks = list(self._chunks)
        if not chunks:
            raise ValueError("the replay holds no transitions yet")
        return {
            "observation": np.concatenate([c.observation[:-1] for c in chunks]),
            "next_observation": np.concatenate([c.observation[1:] for c in chunks]),
            "action": np.concatenate([c.action for c in chunks]),
            "reward": np.concatenate([c.reward for c in chunks]),
            "cost": np.concatenate([c.cost for c in chunks]),
            "terminated": np.concatenate([c.terminated for c in chunks]),
        }

    def sample_transitions(self, batch_size: int) -> dict[str, np.ndarray]:
        """Uniformly sampled transitions, each field [batch_size, ...]."""
        if self._num_steps == 0:
            raise ValueError("cannot sample transitions from an empty replay")
        chunks = list(self._chunks)
        ends = np.cumsum([len(chunk) for chunk in chunks])
        flat = self.rng.integers(0, ends[-1], size=batch_size)
        which = np.searchsorted(ends, flat, side="right")
        offsets = flat - np.concatenate([[0], ends[:-1]])[which]
        fields = {k: [] for k in ("observation", "action", "reward", "cost", "terminated")}
        fields["next_observation"] = []
        for chunk_index, t in zip(which, offsets):
            chunk = chunks[chunk_index]
            fields["observation"].append(chunk.observation[t])
            fields["next_observation"].append(chunk.observation[t + 1])
            fields["action"].append(chunk.action[t])
            fields["reward"].append(chunk.reward[t])
            fields["cost"].append(chunk.cost[t])
            fields["terminated"].append(chunk.terminated[t])
        return {name: np.stack(values) for name, values in fields.items()}

    def sample_sequences(self, batch_size: int, length: int) -> dict[str, np.ndarray]:
        """Sequences of ``length`` consecutive steps from within one chunk each.

        Returns observation, action, reward, cost, terminated, is_first and
        next_observation (o_{t+1}), each [batch_size, length, ...]. Chunks
        shorter than ``length`` are not sampled; a chunk is chosen with
        probability proportional to the number of windows it holds, so every
        window is equally likely.
        """
        chunks = [chunk for chunk in self._chunks if len(chunk) >= length]
        if not chunks:
            raise ValueError(
                f"no stored chunk holds {length} steps yet ({self._num_steps} steps in replay)"
            )
        windows = np.asarray([len(chunk) - length + 1 for chunk in chunks], np.int64)
        ends = np.cumsum(windows)
        flat = self.rng.integers(0, ends[-1], size=batch_size)
        which = np.searchsorted(ends, flat, side="right")
        starts = flat - np.concatenate([[0], ends[:-1]])[which]
        fields = {k: [] for k in ("observation", "action", "reward", "cost", "terminated")}
        fields["is_first"], fields["next_observation"] = [], []
        for chunk_index, start in zip(which, starts):
            chunk = chunks[chunk_index]
            window = slice(start, start + length)
            fields["observation"].append(chunk.observation[window])
            fields["next_observation"].append(chunk.observation[start + 1 : start + length + 1])
            fields["action"].append(chunk.action[window])
            fields["reward"].append(chunk.reward[window])
            fields["cost"].append(chunk.cost[window])
            fields["terminated"].append(chunk.terminated[window])
            is_first = np.zeros(length, bool)
            is_first[0] = chunk.first and start == 0
            fields["is_first"].append(is_first)
        return {name: np.stack(values) for name, values in fields.items()}
