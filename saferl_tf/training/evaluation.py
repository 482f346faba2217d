"""Evaluation episodes: run an agent, optionally film it, and summarize.

The training loop's evaluations and ``saferl-evaluate`` both run episodes
here::

    episode = run_episode(agent, env, seed=7, deterministic=True)
    episodes = run_episodes(agent, env, seeds=[0, 1, 2], camera=camera,
                            on_frame=writer.append)       # one environment
    episodes = run_vector_episodes(agent, envs, seeds=range(10))  # N in parallel
    table = summarize(episodes)  # mean, std and IQM of return, cost, cost rate

An ``Episode`` holds its return, cost and length in environment steps (an
agent step with action repeat k counts k). With a ``camera``
(``envs.watch.watch_camera``) each observation the agent acts on, and the
last one, becomes a frame annotated with the episode, step, return and cost
so far. Episode k of ``seeds`` resets its environment with ``seeds[k]``, so
the same seeds give the same episodes in one environment or in several
(``envs.make_vector(episode_seeds=...)``), up to the agent's own randomness.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np

from saferl_tf.analysis.stats import iqm
from saferl_tf.envs.vector import VectorEnv
from saferl_tf.envs.watch import WatchCamera
from saferl_tf.envs.wrappers import SafeEnv
from saferl_tf.training.video import annotate


@dataclasses.dataclass
class Episode:
    episode_return: float
    episode_cost: float
    length: int  # Environment steps.
    seed: int | None = None

    @property
    def cost_rate(self) -> float:
        return self.episode_cost / max(self.length, 1)


def _caption(index: int, length: int, episode_return: float, episode_cost: float) -> str:
    return f"episode {index}  step {length}  return {episode_return:.1f}  cost {episode_cost:g}"


def run_episode(
    agent,
    env: SafeEnv,
    *,
    seed: int | None = None,
    deterministic: bool = True,
    camera: WatchCamera | None = None,
    on_frame: Callable[[np.ndarray], None] | None = None,
    index: int = 0,
) -> Episode:
    """Plays one episode of ``env`` with ``agent`` (``explore = not
    deterministic``); ``seed`` resets the environment (None continues its
    stream). With ``camera``, ``on_frame`` receives each annotated frame."""
    observation, _ = env.reset(seed=seed)
    is_first, done = True, False
    total_return = total_cost = 0.0
    length = 0

    def film():
        if camera is not None:
            frame = camera.frame()
            on_frame(annotate(frame, _caption(index, length, total_return, total_cost)))

    film()
    while not done:
        action = agent.act(observation[None], explore=not deterministic,
                           is_first=np.asarray([is_first]))[0]  # fmt: skip
        observation, reward, cost, terminated, truncated, info = env.step(action)
        total_return += reward
        total_cost += cost
        length += info.get("env_steps", 1)
        is_first, done = False, terminated or truncated
        film()
    return Episode(float(total_return), float(total_cost), length, seed)


def run_episodes(agent, env: SafeEnv, seeds: Sequence[int | None], **kwargs) -> list[Episode]:
    """``run_episode`` once per seed, in order (``index`` counts them)."""
    return [run_episode(agent, env, seed=seed, index=index, **kwargs)
            for index, seed in enumerate(seeds)]  # fmt: skip


def run_vector_episodes(
    agent, envs: VectorEnv, episodes: int, *, deterministic: bool = True,
    seeds: Sequence[int] | None = None,
) -> list[Episode]:  # fmt: skip
    """``episodes`` episodes over the environments of ``envs`` stepped together.

    ``envs`` must come from ``make_vector(episode_seeds=seeds)`` when episodes
    should match ``run_episodes`` with the same seeds: environment i then
    plays episodes i, i + N, ... in order. Returns them in episode order.
    """
    count = envs.num_envs
    assigned = [list(range(i, episodes, count)) for i in range(count)]
    results: dict[int, Episode] = {}
    observation = envs.reset()
    is_first = np.ones(count, bool)
    totals = np.zeros((count, 2))
    lengths = np.zeros(count, np.int64)
    while len(results) < episodes:
        action = agent.act(observation, explore=not deterministic, is_first=is_first)
        step = envs.step(action)
        totals += np.stack([step.reward, step.cost], -1)
        lengths += step.env_steps
        for i in np.flatnonzero(step.done):
            if assigned[i]:  # Further episodes of a finished environment are not counted.
                k = assigned[i].pop(0)
                seed = None if seeds is None else int(seeds[k])
                episode_return, episode_cost = (float(v) for v in totals[i])
                results[k] = Episode(episode_return, episode_cost, int(lengths[i]), seed)
            totals[i], lengths[i] = 0.0, 0
        observation, is_first = step.next_observation, step.done
    return [results[k] for k in range(episodes)]


def _statistics(values) -> dict[str, float]:
    values = np.asarray(values, np.float64)
    return {"mean": float(values.mean()), "std": float(values.std()), "iqm": float(iqm(values))}


def summarize(episodes: Sequence[Episode]) -> dict[str, dict[str, float]]:
    """Mean, standard deviation (population) and interquartile mean of each
    episode's return, cost and cost rate, and of its length."""
    return {
        "episode_return": _statistics([e.episode_return for e in episodes]),
        "episode_cost": _statistics([e.episode_cost for e in episodes]),
        "cost_rate": _statistics([e.cost_rate for e in episodes]),
        "episode_length": _statistics([e.length for e in episodes]),
    }
