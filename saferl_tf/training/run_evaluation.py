"""Evaluating a trained run from its folder: what ``saferl-evaluate`` calls.

``evaluate_run(EvalSettings(run_dir="results/lambda/<env>/0"))`` reads the
run's ``config.json``, builds its agent with the saved config, restores a
checkpoint (the newest, or ``checkpoint=STEP``) with everything the agent
keeps in it (normalization statistics, posterior and optimizer state, random
generators), plays ``episodes`` episodes and returns a report::

    {"run_dir", "agent", "env", "checkpoint", "step", "deterministic", "seed",
     "episodes": [{"episode", "seed", "episode_return", "episode_cost",
                   "episode_length", "cost_rate"}, ...],
     "summary": {"episode_return": {"mean", "std", "iqm"}, "episode_cost": ...,
                 "cost_rate": ..., "episode_length": ...},
     "cost_limit": ..., "within_cost_limit": ..., "safety": ...}

which it also writes as ``checkpoints/eval_<step>.json`` (``eval_<step>.2.json``
and so on when that exists). Nothing else in the run folder is touched: the
agent gets no replay folder and no logger, and checkpoints are only read, so
a run may be evaluated while it trains. Episode k resets its environment
with seed ``seed + k``, so the same command gives the same episodes (with
``num_envs`` > 1 they are spread over worker processes, same seeds). The
environment is made as for training (action repeat, episode length,
observation kind, distractor dimensions and their dynamics); ``env`` may name
another task whose observation and action spaces are the same. ``video``
films every episode into one MP4 from the environment's own camera
(``envs.watch``), with the return and cost so far written on each frame.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import tensorflow as tf

from saferl_tf import envs as envs_lib
from saferl_tf import files
from saferl_tf.agents import agent_class
from saferl_tf.checkpoints import checkpoint_candidates, restore_checkpoint
from saferl_tf.config import apply_values, field_names
from saferl_tf.envs.watch import frames_per_second, watch_camera
from saferl_tf.errors import CheckpointError, ConfigError
from saferl_tf.training.checkpoint import LoopState
from saferl_tf.training.evaluation import (
    Episode,
    run_episode,
    run_vector_episodes,
    summarize,
)
from saferl_tf.training.experiment import CONFIG_FILE, check_video_size
from saferl_tf.training.video import Mp4Writer


@dataclasses.dataclass
class EvalSettings:
    """What ``evaluate_run`` evaluates, and how."""

    run_dir: str
    checkpoint: str = "latest"  # 'latest' or an environment step with a checkpoint.
    episodes: int = 10
    env: str | None = None  # None: the task the run trained on.
    video: str | None = None  # An .mp4 path that does not exist yet.
    video_size: int = 480
    deterministic: bool = True  # False: the policy the agent collects with.
    seed: int = 0  # Episode k resets with seed + k.
    num_envs: int = 1


def load_record(run_dir: Path) -> dict:
    """The run's ``config.json``, or a one-line error naming what is missing."""
    if not run_dir.is_dir():
        raise ConfigError(f"--run_dir {run_dir} is not a folder")
    path = run_dir / CONFIG_FILE
    if not path.is_file():
        raise ConfigError(
            f"{run_dir} is not a run folder: it has no {CONFIG_FILE} "
            "(give the folder saferl-train wrote, results/<agent>/<env>/<seed>)"
        )
    try:
        record = json.loads(path.read_text())
    except ValueError as error:
        raise ConfigError(f"{path} is not valid JSON ({error})") from None
    missing = [key for key in ("agent", "env", "agent_config") if key not in record]
    if missing:
        raise ConfigError(f"{path} lacks {', '.join(missing)}; it was not written by saferl-train")
    return record


def agent_config(cls, saved: dict):
    """The agent's config from its saved values. Settings added since the run
    was made take their defaults; saved keys the agent no longer has are
    dropped with a warning (a run made by an older version still loads)."""
    names = set(field_names(cls.Config))
    stale = sorted(set(saved) - names)
    if stale:
        print(
            f"saferl_tf: warning: {cls.__name__} no longer has the saved setting(s) "
            f"{', '.join(stale)}; ignored",
            file=sys.stderr,
        )
    values = {key: value for key, value in saved.items() if key in names}
    return apply_values(cls.Config(), values, f"the run's {CONFIG_FILE}")


def choose_checkpoint(checkpoint_dir: Path, which: str) -> list[str]:
    """The checkpoint prefixes to try, in order: the newest first for 'latest'
    (older ones if it does not restore), or exactly the one of step ``which``."""
    candidates = checkpoint_candidates(checkpoint_dir)
    if not candidates:
        raise CheckpointError(f"{checkpoint_dir} holds no checkpoint to evaluate")
    if which == "latest":
        return candidates
    try:
        step = int(which)
    except ValueError:
        raise ConfigError(
            f"--checkpoint must be 'latest' or an environment step, got {which!r}"
        ) from None
    steps = [int(path.rsplit("-", 1)[1]) for path in candidates]
    if step not in steps:
        raise CheckpointError(
            f"no checkpoint at step {step} in {checkpoint_dir}; "
            f"accepted: latest, {', '.join(map(str, sorted(steps)))}"
        )
    return [candidates[steps.index(step)]]


def _space_text(space) -> str:
    return f"{type(space).__name__}{tuple(space.shape)}"


def _same_space(a, b) -> bool:
    if type(a) is not type(b) or a.shape != b.shape or a.dtype != b.dtype:
        return False
    if hasattr(a, "low"):
        return np.array_equal(a.low, b.low) and np.array_equal(a.high, b.high)
    return True


def _check_spaces(trained_env: str, env_id: str, trained, other) -> None:
    for what, a, b in (("observation", trained[0], other[0]), ("action", trained[1], other[1])):
        if not _same_space(a, b):
            raise ConfigError(
                f"--env {env_id} does not fit the agent: its {what} space is "
                f"{_space_text(b)} where {trained_env}'s is {_space_text(a)} "
                "(only tasks with the same observation and action spaces can be evaluated)"
            )


class Evaluation:
    """A restored agent and the environment settings it was trained with."""

    def __init__(self, settings: EvalSettings):
        self.settings = settings
        self.run_dir = Path(settings.run_dir)
        record = load_record(self.run_dir)
        self.record = record
        run = record.get("run", {})
        self.cls = agent_class(record["agent"])
        self.config = agent_config(self.cls, record["agent_config"])
        self.trained_env = record["env"]
        self.env_id = settings.env or self.trained_env
        self.run_seed = int(run.get("seed", 0))
        self.env_kwargs = dict(
            action_repeat=self.config.action_repeat,
            episode_length=run.get("episode_length"),
            observation=self.config.observation,
            task_observation=self.cls.wants_task_observation(self.config),
            distraction_dimensions=int(record.get("distraction_dimensions", 0)),
            distraction_seed=self.run_seed,
        )
        envs_lib.parse_env_id(self.env_id)
        self.checkpoint_paths = choose_checkpoint(self.run_dir / "checkpoints", settings.checkpoint)

    def make_env(self, **kwargs):
        return envs_lib.make(self.env_id, **self.env_kwargs, **kwargs)

    def restore(self, observation_space, action_space):
        """Builds the agent and restores the chosen checkpoint; returns
        (agent, checkpoint path, environment step)."""
        if self.env_id != self.trained_env:
            trained = envs_lib.make(self.trained_env, **self.env_kwargs)
            try:
                spaces = (trained.observation_space, trained.action_space)
            finally:
                trained.close()
            _check_spaces(self.trained_env, self.env_id, spaces, (observation_space, action_space))
        failures = []
        for path in self.checkpoint_paths:
            agent = self.cls(
                observation_space,
                action_space,
                self.config,
                num_envs=self.settings.num_envs if not self.settings.video else 1,
                seed=self.run_seed,
                task=envs_lib.task_functions(self.env_id),
            )
            loop = LoopState()
            try:
                restore_checkpoint(tf.train.Checkpoint(agent=agent, loop=loop), path, partial=True)
            except CheckpointError as error:
                failures.append(str(error))
                continue
            if failures:
                print(f"saferl_tf: warning: {failures[-1]}; evaluating {path} instead",
                      file=sys.stderr)  # fmt: skip
            agent.after_restore()
            return agent, path, int(loop.env_steps.numpy())
        raise CheckpointError(failures[0])


def _check(settings: EvalSettings) -> None:
    for name in ("episodes", "num_envs"):
        value = getattr(settings, name)
        if value < 1:
            raise ConfigError(f"--{name} must be a positive integer, got {value}")
    if settings.video:
        check_video_size(settings.video_size, "--video_size")


def evaluate_run(settings: EvalSettings, echo=print) -> dict:
    """Evaluates the run (module docstring); ``echo`` receives the lines to show.
    Returns the report, also written as ``checkpoints/eval_<step>.json``."""
    _check(settings)
    evaluation = Evaluation(settings)
    seeds = [settings.seed + k for k in range(settings.episodes)]
    writer = Mp4Writer(settings.video, 1.0) if settings.video else None  # Checks the path.
    if writer is not None or settings.num_envs == 1:
        if writer is not None and settings.num_envs > 1:
            echo("note: with --video the episodes play in this process (--num_envs ignored)")
        env = evaluation.make_env(render=writer is not None)
        try:
            agent, path, step = evaluation.restore(env.observation_space, env.action_space)
            echo(f"evaluating {evaluation.record['agent']} at step {step} ({path}) "
                 f"on {evaluation.env_id}: {settings.episodes} episodes")  # fmt: skip
            episodes = _play(agent, env, seeds, settings, writer, echo)
        finally:
            env.close()
    else:
        envs = envs_lib.make_vector(evaluation.env_id, settings.num_envs, episode_seeds=seeds,
                                    **evaluation.env_kwargs)  # fmt: skip
        try:
            agent, path, step = evaluation.restore(envs.observation_space, envs.action_space)
            echo(f"evaluating {evaluation.record['agent']} at step {step} ({path}) "
                 f"on {evaluation.env_id}: {settings.episodes} episodes in "
                 f"{settings.num_envs} environments")  # fmt: skip
            episodes = run_vector_episodes(agent, envs, settings.episodes, seeds=seeds,
                                           deterministic=settings.deterministic)  # fmt: skip
        finally:
            envs.close()
    report = _report(evaluation, settings, path, step, episodes)
    report["report_file"] = str(_write_report(evaluation.run_dir / "checkpoints", step, report))
    for line in format_report(report):
        echo(line)
    return report


def _play(agent, env, seeds, settings: EvalSettings, writer: Mp4Writer | None, echo):
    camera = None
    episodes = []
    try:
        if writer is not None:
            camera = watch_camera(env, settings.video_size)
            writer.fps = frames_per_second(env, agent.config.action_repeat)
        for index, seed in enumerate(seeds):
            episode = run_episode(agent, env, seed=seed, index=index,
                                  deterministic=settings.deterministic, camera=camera,
                                  on_frame=None if writer is None else writer.append)  # fmt: skip
            episodes.append(episode)
            echo(f"  episode {index} ({index + 1} of {len(seeds)}): return "
                 f"{episode.episode_return:.2f}, cost {episode.episode_cost:g}, "
                 f"{episode.length} steps")  # fmt: skip
    except BaseException:
        if writer is not None:
            writer.abandon()
        raise
    finally:
        if camera is not None:
            camera.close()
    if writer is not None:
        video = writer.close()
        echo(f"video: {video} ({writer.frames} frames at {writer.fps:g} fps)")
    return episodes


def _report(evaluation: Evaluation, settings: EvalSettings, path, step, episodes) -> dict:
    summary = summarize(episodes)
    mean_length = summary["episode_length"]["mean"]
    limit = evaluation.cls.episode_cost_limit(evaluation.config, mean_length)
    return {
        "run_dir": str(evaluation.run_dir),
        "agent": evaluation.record["agent"],
        "env": evaluation.env_id,
        "trained_env": evaluation.trained_env,
        "checkpoint": Path(path).name,
        "step": step,
        "deterministic": settings.deterministic,
        "seed": settings.seed,
        "video": settings.video,
        "episodes": [_episode_row(k, e) for k, e in enumerate(episodes)],
        "summary": summary,
        "safety": bool(evaluation.config.safety),
        "cost_limit": limit,
        "within_cost_limit": None if limit is None else summary["episode_cost"]["mean"] <= limit,
    }


def _episode_row(index: int, episode: Episode) -> dict:
    return {
        "episode": index,
        "seed": episode.seed,
        "episode_return": episode.episode_return,
        "episode_cost": episode.episode_cost,
        "episode_length": episode.length,
        "cost_rate": episode.cost_rate,
    }


def _write_report(folder: Path, step: int, report: dict) -> Path:
    path, copy = folder / f"eval_{step}.json", 1
    while path.exists():  # An earlier evaluation's report is kept.
        copy += 1
        path = folder / f"eval_{step}.{copy}.json"
    files.write_atomically(path, json.dumps(report, indent=2) + "\n",
                           "check the folder's permissions and free space")  # fmt: skip
    return path


def format_report(report: dict) -> list[str]:
    """The report as a table: one row per episode, then mean ± std and IQM."""
    header = ("episode", 7), ("seed", 10), ("return", 12), ("cost", 10), ("length", 7)
    lines = [" ".join(f"{name:>{width}}" for name, width in header) + f" {'cost rate':>10}"]
    for row in report["episodes"]:
        seed = "-" if row["seed"] is None else str(row["seed"])
        lines.append(
            f"{row['episode']:>7} {seed:>10} {row['episode_return']:>12.2f} "
            f"{row['episode_cost']:>10.4g} {row['episode_length']:>7} {row['cost_rate']:>10.4g}"
        )
    summary = report["summary"]
    for label, key in (("return", "episode_return"), ("cost", "episode_cost"),
                       ("cost rate", "cost_rate")):  # fmt: skip
        stats = summary[key]
        lines.append(f"{label:>9}: mean {stats['mean']:.4g} ± {stats['std']:.3g} (std), "
                     f"IQM {stats['iqm']:.4g}")  # fmt: skip
    limit = report["cost_limit"]
    if limit is not None:
        mean_cost = summary["episode_cost"]["mean"]
        verdict = "within" if report["within_cost_limit"] else "ABOVE"
        note = "" if report["safety"] else " (trained without --safety: the limit was not enforced)"
        lines.append(f"mean cost {mean_cost:.4g} is {verdict} the agent's cost limit "
                     f"{limit:.4g} per episode of {summary['episode_length']['mean']:.0f} "
                     f"steps{note}")  # fmt: skip
    lines.append(f"report: {report['report_file']}")
    return lines
