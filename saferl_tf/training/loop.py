"""The training loop: collect, update on the agent's schedule, evaluate, checkpoint.

``Trainer(agent, envs, ...).run()`` steps ``envs`` (a ``VectorEnv``) with
``agent.act``, hands every batched step to ``agent.observe`` and calls
``agent.update()`` after each one. It logs, under ``train/``:
``episode_return``, ``episode_cost``, ``episode_length`` for every finished
episode, ``cost_rate`` (total cost over total environment steps so far) and
``steps_per_second``; under ``eval/`` the same for the deterministic policy
every ``eval_every`` steps (the first evaluation episode filmed into
``videos/`` and TensorBoard every ``eval_video_every`` steps); and whatever
``update()`` returns.

Steps are environment steps (an agent step with action repeat k counts k).
Checkpoints are written every ``checkpoint_every`` steps, at the end, and on
SIGINT/SIGTERM; a run that finds a checkpoint resumes from it. A non-finite
metric stops the run at once, without writing a checkpoint, so the last good
one stays the newest.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import signal
import sys
import threading
import time
from collections.abc import Callable

import numpy as np

from saferl_tf.agents.base import Agent, Transition, UpdateControl
from saferl_tf.envs.vector import VectorEnv
from saferl_tf.envs.watch import WatchCamera, frames_per_second, watch_camera
from saferl_tf.envs.wrappers import SafeEnv
from saferl_tf.errors import NonFiniteError
from saferl_tf.training.checkpoint import LoopState, RunCheckpoint
from saferl_tf.training.evaluation import Episode, run_episode
from saferl_tf.training.logger import Logger
from saferl_tf.training.progress import Progress


@dataclasses.dataclass
class LoopSettings:
    total_steps: int
    eval_every: int = 10_000  # 0 disables evaluation.
    eval_episodes: int = 1
    checkpoint_every: int = 10_000
    log_every: int = 1_000
    progress: bool = True
    eval_video_every: int = 0  # Film an evaluation episode every N steps (0: never).
    eval_video_size: int = 256  # Its frames' height and width in pixels.


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived. ``checkpoint`` is the one written on the way
    out, or None when a second signal stopped the run at once (the last
    scheduled checkpoint is then the newest)."""

    def __init__(self, signum: int, step: int, checkpoint: str | None):
        self.signum = signum
        self.step = step
        self.checkpoint = checkpoint
        if checkpoint is None:
            detail = "at once by a second signal; its last checkpoint is kept"
        else:
            detail = f"with checkpoint {checkpoint}"
        super().__init__(
            f"stopped by {signal.Signals(signum).name} at step {step}, {detail}. "
            "Run the same command again to resume"
        )

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


@contextlib.contextmanager
def stop_on_signals(flag: dict):
    """Turns SIGINT/SIGTERM into ``flag["signum"]``, which the loop checks after
    each step and agents between train steps (``UpdateControl``).

    A second signal stops at once (KeyboardInterrupt), except while a
    checkpoint is being written (``flag["saving"]``): the save finishes first,
    so a second Ctrl-C never loses the checkpoint.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        if "signum" in flag and not flag.get("saving"):
            raise KeyboardInterrupt  # A second signal: stop now.
        flag.setdefault("signum", signum)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


class _LoopControl(UpdateControl):
    """The loop's ``UpdateControl``: stops on a signal, shows long update rounds."""

    def __init__(self, stop: dict, progress: Progress, min_interval: float = 0.5):
        self.stop = stop
        self.progress = progress
        self.min_interval = min_interval
        self.begin()

    def begin(self) -> None:
        """Called before each ``agent.update()``."""
        self._start = self._last = time.monotonic()
        self._count = 0
        self.showing = False

    def should_stop(self) -> bool:
        return "signum" in self.stop

    def report(self, done: int, total: int) -> None:
        self._count += 1
        now = time.monotonic()
        if now - self._last < self.min_interval:
            return
        self._last = now
        seconds = (now - self._start) / self._count
        self.progress.status(f"update {done}/{total}, {seconds:.3g} s/update")
        self.showing = True


class Trainer:
    """Runs one agent on a vector of environments (see the module docstring)."""

    def __init__(
        self,
        agent: Agent,
        envs: VectorEnv,
        settings: LoopSettings,
        logger: Logger,
        checkpoint_dir,
        make_eval_env: Callable[[], SafeEnv] | None = None,
    ):
        self.agent = agent
        self.envs = envs
        self.settings = settings
        self.logger = logger
        self.make_eval_env = make_eval_env
        self._eval_env: SafeEnv | None = None
        self._camera: WatchCamera | None = None
        self._last_video: int | None = None  # Step of the last filmed evaluation.
        self.state = LoopState()
        self.checkpoint = RunCheckpoint(checkpoint_dir, agent, self.state)
        self.resumed_from: str | None = None
        self._stop: dict = {}  # Filled by stop_on_signals while ``run`` runs.
        self._restored: bool | None = None

    # --- Counters live in Python during the loop; variables only at save time.

    def _load_counters(self) -> None:
        self.env_steps = int(self.state.env_steps.numpy())
        self.episodes = int(self.state.episodes.numpy())
        self.total_cost = float(self.state.total_cost.numpy())
        self.next_eval = int(self.state.next_eval.numpy())
        self.last_eval = int(self.state.last_eval.numpy())
        self.next_checkpoint = int(self.state.next_checkpoint.numpy())

    def _save(self) -> str:
        self._stop["saving"] = True  # A signal now waits for the save (stop_on_signals).
        try:
            return self._save_now()
        finally:
            self._stop.pop("saving", None)

    def _save_now(self) -> str:
        self.state.env_steps.assign(self.env_steps)
        self.state.episodes.assign(self.episodes)
        self.state.total_cost.assign(self.total_cost)
        self.state.next_eval.assign(self.next_eval)
        self.state.last_eval.assign(self.last_eval)
        self.state.next_checkpoint.assign(self.next_checkpoint)
        path = self.checkpoint.save(self.env_steps)
        self.logger.flush()
        return path

    def restore(self) -> bool:
        """Restores the newest usable checkpoint (once; ``run`` calls it if the
        caller has not); False when the run starts afresh."""
        if self._restored is not None:
            return self._restored
        self._restored = self._restore()
        return self._restored

    def _restore(self) -> bool:
        if self.checkpoint.restore():
            self.resumed_from = self.checkpoint.restored
            self._load_counters()
            self.logger.set_aside_after(self.env_steps)
            return True
        self._load_counters()
        self.next_eval = self.settings.eval_every if self.settings.eval_every > 0 else -1
        self.next_checkpoint = self.settings.checkpoint_every
        return False

    def run(self) -> dict[str, float]:
        """Trains until ``total_steps``; returns the last logged train/eval metrics."""
        settings = self.settings
        self.restore()
        summary: dict[str, float] = {}
        if self.env_steps >= settings.total_steps:
            print(
                f"saferl_tf: the run is already at step {self.env_steps} of "
                f"{settings.total_steps}; raise --total_steps to train further",
                file=sys.stderr,
            )
            summary["env_steps"] = self.env_steps
            return summary
        progress = Progress(settings.total_steps, self.env_steps, settings.progress)
        if self.resumed_from:
            progress.write(f"resumed from {self.resumed_from} at step {self.env_steps}")
        stop = self._stop
        stop.clear()
        control = _LoopControl(stop, progress)
        self.agent.control = control
        num_envs = self.envs.num_envs
        try:
            with stop_on_signals(stop):
                observation = self.envs.reset()
                is_first = np.ones(num_envs, bool)
                episode_return = np.zeros(num_envs)
                episode_cost = np.zeros(num_envs)
                episode_length = np.zeros(num_envs, np.int64)
                log_steps, log_time = self.env_steps, time.monotonic()
                next_log = self.env_steps + settings.log_every
                loop_start, start_steps = time.perf_counter(), self.env_steps
                while self.env_steps < settings.total_steps:
                    action = self.agent.act(observation, explore=True, is_first=is_first)
                    step = self.envs.step(action)
                    self.agent.observe(
                        Transition(
                            observation,
                            action,
                            step.reward,
                            step.cost,
                            step.observation,
                            step.terminated,
                            step.truncated,
                        )
                    )
                    steps = int(step.env_steps.sum())
                    self.env_steps += steps
                    self.total_cost += float(step.cost.sum())
                    episode_return += step.reward
                    episode_cost += step.cost
                    episode_length += step.env_steps
                    is_first = step.done
                    for index in np.flatnonzero(is_first):
                        self.episodes += 1
                        metrics = {
                            "train/episode_return": episode_return[index],
                            "train/episode_cost": episode_cost[index],
                            "train/episode_length": episode_length[index],
                            "train/cost_rate": self.total_cost / self.env_steps,
                            "train/episodes": self.episodes,
                        }
                        self._log(metrics)
                        summary.update(metrics)
                        progress.set(
                            ret=episode_return[index],
                            cost=episode_cost[index],
                            episode=self.episodes,
                        )
                        episode_return[index] = episode_cost[index] = episode_length[index] = 0
                    observation = step.next_observation

                    control.begin()
                    self._log(self.agent.update())
                    if control.showing:
                        progress.status(None)
                    progress.update(steps)

                    if self.env_steps >= next_log:
                        now = time.monotonic()
                        speed = (self.env_steps - log_steps) / max(now - log_time, 1e-9)
                        self.logger.write({"train/steps_per_second": speed}, self.env_steps)
                        log_steps, log_time = self.env_steps, now
                        next_log = self.env_steps + settings.log_every
                    if 0 <= self.next_eval <= self.env_steps:
                        summary.update(self.evaluate())
                        self.next_eval = self.env_steps + settings.eval_every
                    if self.env_steps >= self.next_checkpoint:
                        self.next_checkpoint = self.env_steps + settings.checkpoint_every
                        self._save()
                    if "signum" in stop:
                        path = self._save()
                        raise Interrupted(stop["signum"], self.env_steps, path)
                # Collection throughput without start-up, final evaluation and saving.
                summary["loop_seconds"] = time.perf_counter() - loop_start
                summary["loop_steps"] = self.env_steps - start_steps
                # Logged at the last step too, so that the cost of episodes still
                # running at the end counts in the results tree's totals.
                final = {"train/cost_rate": self.total_cost / max(self.env_steps, 1)}
                self._log(final)
                summary.update(final)
                if settings.eval_every > 0 and self.last_eval != self.env_steps:
                    summary.update(self.evaluate())
                self._save()
        except KeyboardInterrupt:
            raise Interrupted(signal.SIGINT, self.env_steps, None) from None
        finally:
            self.agent.control = UpdateControl()
            progress.close()
            self.logger.flush()
            if self._camera is not None:
                self._camera.close()
                self._camera = None
            if self._eval_env is not None:
                self._eval_env.close()
                self._eval_env = None
        summary["env_steps"] = self.env_steps
        return summary

    def _log(self, metrics: dict[str, float]) -> None:
        """Writes ``metrics``; a non-finite one stops the run before it is written."""
        if metrics:
            _check_finite(metrics, self.env_steps, self.checkpoint.latest)
            self.logger.write(metrics, self.env_steps)

    def evaluate(self) -> dict[str, float]:
        """Runs ``eval_episodes`` episodes with the deterministic policy and logs
        them; the first is filmed when a video is due (``eval_video_every``)."""
        if self.make_eval_env is None:
            return {}
        if self._eval_env is None:
            self._eval_env = self.make_eval_env()
        episodes = []
        for index in range(self.settings.eval_episodes):
            if index == 0 and self._video_due():
                episodes.append(self._filmed_episode())
            else:
                episodes.append(run_episode(self.agent, self._eval_env, deterministic=True))
        costs = [e.episode_cost for e in episodes]
        lengths = [e.length for e in episodes]
        metrics = {
            "eval/episode_return": float(np.mean([e.episode_return for e in episodes])),
            "eval/episode_cost": float(np.mean(costs)),
            "eval/episode_length": float(np.mean(lengths)),
            "eval/cost_rate": float(np.sum(costs) / max(np.sum(lengths), 1)),
        }
        self._log(metrics)
        self.last_eval = self.env_steps
        return metrics

    def _video_due(self) -> bool:
        every = self.settings.eval_video_every
        return every > 0 and (
            self._last_video is None or self.env_steps - self._last_video >= every
        )

    def _filmed_episode(self) -> Episode:
        if self._camera is None:
            self._camera = watch_camera(self._eval_env, self.settings.eval_video_size)
        fps = frames_per_second(self._eval_env, getattr(self.agent.config, "action_repeat", 1))
        recording = self.logger.record_video("eval/video", self.env_steps, fps)
        try:
            episode = run_episode(self.agent, self._eval_env, deterministic=True,
                                  camera=self._camera, on_frame=recording.append)  # fmt: skip
        except BaseException:
            recording.abandon()
            raise
        recording.close()
        self._last_video = self.env_steps
        return episode


def _check_finite(metrics: dict[str, float], step: int, last_checkpoint: str | None) -> None:
    bad = [name for name, value in metrics.items() if not math.isfinite(value)]
    if bad:
        kept = last_checkpoint or "none written yet"
        raise NonFiniteError(
            f"non-finite {', '.join(f'{n}={metrics[n]}' for n in bad)} at step {step}; "
            f"the run stopped and kept its last good checkpoint ({kept})"
        )
