"""One training run from its settings: what ``launchers/train.py`` calls.

``train(RunSettings(env="sgym_Safexp-PointGoal2-v0", agent="random"))`` builds
the config, the environments, the agent, the logger and the loop; writes
``config.json``; trains (resuming if the run folder holds a checkpoint) and
writes ``summary.json``. The run folder defaults to
``results/<agent>/<env>/<seed>/``::

    config.json        the settings and the agent's full config
    events.out.tfevents.*   TensorBoard scalars
    metrics.jsonl      the same scalars, one JSON object per line
    checkpoints/       tf.train.CheckpointManager checkpoints (ckpt-<step>)
    replay/            episodes as compressed .npz
    summary.json       the last train and eval metrics, at the end
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sys
from pathlib import Path

import tensorflow as tf

from saferl_tf import envs as envs_lib
from saferl_tf import files
from saferl_tf.agents import agent_class, make_agent
from saferl_tf.agents.base import preset_names
from saferl_tf.checkpoints import checkpoint_candidates
from saferl_tf.config import build_config, config_to_dict
from saferl_tf.errors import CheckpointError, ConfigError
from saferl_tf.training.logger import METRICS_FILE, Logger
from saferl_tf.training.loop import LoopSettings, Trainer

CONFIG_FILE = "config.json"
SUMMARY_FILE = "summary.json"


@dataclasses.dataclass
class RunSettings:
    """Everything a training run is made from. ``None`` means: from the agent
    config, or for ``total_steps`` and ``checkpoint_every`` from the
    environment (see ``complete_schedule``)."""

    env: str
    agent: str = "lambda"
    config: str = ""
    overrides: dict[str, str] = dataclasses.field(default_factory=dict)
    run_dir: str | None = None
    results_dir: str = "results"
    seed: int = 0
    total_steps: int | None = None
    eval_every: int = 10_000  # A run also evaluates once at its end.
    eval_episodes: int = 1
    checkpoint_every: int | None = None
    log_every: int = 1_000
    num_envs: int = 1
    episode_length: int | None = None
    distraction_dimensions: int = 0
    action_repeat: int | None = None
    observation: str | None = None
    safety: bool | None = None
    jit: bool | None = None
    progress: bool = True
    eval_video_every: int = 0  # Film an evaluation episode every N steps (0: never).
    eval_video_size: int = 256


def complete_schedule(settings: RunSettings) -> RunSettings:
    """Fills the schedule the settings leave open: ``total_steps`` from the
    environment's budget (``envs.default_total_steps``: 1M for safety-gymnasium
    and gymnasium tasks, less for the package's small tasks) and checkpoints
    every tenth of it (at most every 10,000 steps), so that a short run also
    resumes from close to where it stopped."""
    total_steps = settings.total_steps
    if total_steps is None:
        total_steps = envs_lib.default_total_steps(settings.env)
    checkpoint_every = settings.checkpoint_every
    if checkpoint_every is None:
        checkpoint_every = min(10_000, max(total_steps // 10, 1))
    return dataclasses.replace(settings, total_steps=total_steps, checkpoint_every=checkpoint_every)


def cost_limit_warning(config, env_id: str, episode_length: int | None = None) -> str | None:
    """A warning when ``cost_limit`` acts but refers to another number of
    environment steps (``config.episode_length``) than the task's episodes
    last, so that it is not the per-episode budget a user may think it is;
    None otherwise."""
    steps = getattr(config, "episode_length", None)
    if not getattr(config, "safety", False) or not steps or not config.cost_limit:
        return None
    episode = envs_lib.episode_steps(env_id, episode_length)
    if not episode or episode == steps:
        return None
    return (
        f"cost_limit {config.cost_limit:g} is the budget per episode_length={steps} steps, "
        f"but episodes of {env_id} last {episode}: {config.cost_limit * episode / steps:g} per "
        f"episode. Pass --config.episode_length={episode} for a budget per episode."
    )


def _check_positive(**values) -> None:
    for name, value in values.items():
        if value is not None and value < 1:
            raise ConfigError(f"--{name} must be a positive integer, got {value}")


def resolve(settings: RunSettings):
    """Checks settings whose schedule is complete (``complete_schedule``);
    returns (agent class, agent config, run folder)."""
    _check_positive(
        total_steps=settings.total_steps,
        num_envs=settings.num_envs,
        eval_episodes=settings.eval_episodes,
        checkpoint_every=settings.checkpoint_every,
        log_every=settings.log_every,
        episode_length=settings.episode_length,
        action_repeat=settings.action_repeat,
    )
    if settings.eval_every < 0:
        raise ConfigError(f"--eval_every must be >= 0 (0 disables), got {settings.eval_every}")
    if settings.eval_video_every < 0:
        raise ConfigError(
            f"--eval_video_every must be >= 0 (0 disables), got {settings.eval_video_every}"
        )
    check_video_size(settings.eval_video_size, "--eval_video_size")
    cls = agent_class(settings.agent)
    overrides = dict(settings.overrides)
    for key in ("action_repeat", "observation", "safety", "jit"):
        value = getattr(settings, key)
        if value is not None:
            overrides[key] = value
    config = build_config(cls.Config, preset_names(cls), settings.config, overrides)
    if config.observation not in envs_lib.OBSERVATION_KINDS:
        raise ConfigError(
            f"unknown observation kind {config.observation!r}; "
            f"accepted: {', '.join(envs_lib.OBSERVATION_KINDS)}"
        )
    envs_lib.parse_env_id(settings.env)
    run_dir = Path(
        settings.run_dir
        or Path(settings.results_dir) / settings.agent / settings.env / str(settings.seed)
    )
    return cls, config, run_dir


def check_video_size(size: int, flag: str) -> None:
    """Video frames are square; H.264 needs an even side."""
    if size < 16 or size % 2:
        raise ConfigError(f"{flag} must be an even number of pixels >= 16, got {size}")


def _record(settings: RunSettings, config) -> dict:
    run = dataclasses.asdict(settings)
    run.pop("overrides")
    record = {"agent": settings.agent, "env": settings.env, "run": run,
              "agent_config": config_to_dict(config)}  # fmt: skip
    if settings.distraction_dimensions:  # Part of the task (absent: none, as older runs).
        record["distraction_dimensions"] = settings.distraction_dimensions
    return record


def check_same_run(run_dir: Path, record: dict, keys, nested: str, what: str = "run",
                   ignore: tuple[str, ...] = (), defaults: dict | None = None) -> None:  # fmt: skip
    """Refuses to resume ``run_dir`` when its ``config.json`` differs from ``record``
    in any of ``keys`` or any entry of the dict ``record[nested]`` (bar ``ignore``).

    An entry the saved record lacks is a setting added since the run was made:
    it matches when ``record`` has it at its value in ``defaults`` (new options
    default to the behaviour before them), so older runs stay resumable."""
    path = run_dir / CONFIG_FILE
    if not path.exists():
        return
    try:
        previous = json.loads(path.read_text())
    except ValueError:
        return
    record = json.loads(json.dumps(record, default=str))  # Tuples as JSON has them.
    differing = [key for key in keys if previous.get(key) != record.get(key)]
    old, new = previous.get(nested, {}), record.get(nested, {})
    defaults = json.loads(json.dumps(defaults or {}, default=str))
    differing += [
        f"{nested}.{k}"
        for k in sorted(set(old) | set(new))
        if k not in ignore
        and old.get(k) != new.get(k)
        and not (k not in old and k in defaults and new.get(k) == defaults[k])
    ]
    if differing:
        raise ConfigError(
            f"{run_dir} holds a {what} with different settings ({', '.join(differing)}); "
            "resume it with its own settings or choose another --run_dir"
        )


def _write_json(path: Path, data: dict) -> None:
    """Writes ``path`` whole or not at all (a full disk leaves the old file)."""
    text = json.dumps(data, indent=2, default=str) + "\n"
    files.write_atomically(path, text, files.RERUN_ADVICE)


def _resume_step(checkpoint_dir: Path) -> int:
    candidates = checkpoint_candidates(checkpoint_dir)
    return int(candidates[0].rsplit("-", 1)[-1]) if candidates else 0


def _refuse_unresumable(run_dir: Path, checkpoint_dir: Path) -> None:
    """A folder holding a run's data but no checkpoint would be trained again
    from step 0 over that data: refuse it, touching nothing."""
    if checkpoint_candidates(checkpoint_dir):
        return
    found = []
    replay = sorted((run_dir / "replay").glob("*.npz")) if (run_dir / "replay").is_dir() else []
    if replay:
        found.append(f"{len(replay)} replay files")
    metrics = run_dir / METRICS_FILE
    if metrics.is_file() and metrics.stat().st_size > 0:
        found.append(METRICS_FILE)
    if (run_dir / SUMMARY_FILE).is_file():
        found.append(SUMMARY_FILE)
    if not found:
        return
    leftovers = sorted(p.name for p in checkpoint_dir.iterdir()) if checkpoint_dir.is_dir() else []
    what = f"only {', '.join(leftovers)}" if leftovers else "no checkpoint files"
    raise CheckpointError(
        f"{run_dir} holds a run ({', '.join(found)}) but no usable checkpoint "
        f"({checkpoint_dir} has {what}); training would start again from step 0 over it. "
        "Move the folder aside (or delete it) to start afresh, or choose another --run_dir"
    )


def parse_seeds(values) -> list[int]:
    """['0', '1', '2'] or ['0-2'] -> [0, 1, 2], or a one-line ConfigError."""
    seeds = []
    for value in values:
        text = str(value).strip()
        first, dash, last = text.partition("-")
        try:
            if dash and first:  # A range a-b (a leading '-' is a negative seed).
                low, high = int(first), int(last)
                if high < low:
                    raise ValueError
                seeds.extend(range(low, high + 1))
            else:
                seeds.append(int(text))
        except ValueError:
            raise ConfigError(
                "--seeds must be comma-separated integers or ranges (e.g. 0,1,2 or 0-4), "
                f"got {value!r}"
            ) from None
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds has a repeated seed: {','.join(map(str, seeds))}")
    return seeds


def describe(settings: RunSettings, seeds: list[int]) -> list[str]:
    """What ``train_seeds(settings, seeds)`` would do, one line per seed, with
    every check it makes before training (agent, env id, presets, config keys);
    writes nothing."""
    _check_seeds(settings, seeds)
    lines = []
    for seed in seeds:
        seeded = complete_schedule(dataclasses.replace(settings, seed=seed))
        cls, config, run_dir = resolve(seeded)
        resume = _resume_step(run_dir / "checkpoints")
        start = f"resuming at step {resume}" if resume else "from step 0"
        lines.append(
            f"would train {seeded.agent} ({cls.__name__}) on {seeded.env} for "
            f"{seeded.total_steps} steps ({start}) into {run_dir}; "
            f"config: {json.dumps(config_to_dict(config), default=str)}"
        )
    return lines


def _check_seeds(settings: RunSettings, seeds: list[int]) -> None:
    if len(seeds) > 1 and settings.run_dir:
        raise ConfigError("--run_dir names one run folder; with several --seeds use --results_dir")


def train_seeds(settings: RunSettings, seeds: list[int]) -> list[dict]:
    """Trains (or resumes) ``settings`` once per seed, one after another, each in
    ``results/<agent>/<env>/<seed>/``; returns their summaries."""
    _check_seeds(settings, seeds)
    summaries = []
    for index, seed in enumerate(seeds):
        if len(seeds) > 1:
            print(f"saferl_tf: seed {seed} ({index + 1} of {len(seeds)})", file=sys.stderr)
        summaries.append(train(dataclasses.replace(settings, seed=seed)))
    return summaries


def train(settings: RunSettings) -> dict:
    """Runs (or resumes) the training run described by ``settings``; returns its summary."""
    settings = complete_schedule(settings)
    cls, config, run_dir = resolve(settings)
    record = _record(settings, config)
    # The agent, the env and the agent config must match.
    check_same_run(run_dir, record, ("agent", "env", "distraction_dimensions"), "agent_config",
                   defaults=config_to_dict(type(config)()))  # fmt: skip
    checkpoint_dir = run_dir / "checkpoints"
    _refuse_unresumable(run_dir, checkpoint_dir)
    files.make_folder(run_dir, "choose another --run_dir, or fix the permissions")
    with files.exclusive_lock(run_dir, "training run", "choose another --run_dir"):
        return _train_locked(settings, cls, config, run_dir, record, checkpoint_dir)


def _train_locked(settings, cls, config, run_dir: Path, record: dict, checkpoint_dir: Path):
    # Environments of a resumed run get fresh seeds, so that it does not replay
    # the episodes it saw before its checkpoint.
    env_seed = settings.seed * 1_000_003 + _resume_step(checkpoint_dir)
    env_kwargs = dict(
        action_repeat=config.action_repeat,
        episode_length=settings.episode_length,
        observation=config.observation,
        task_observation=cls.wants_task_observation(config),
        distraction_dimensions=settings.distraction_dimensions,
        distraction_seed=settings.seed,
    )
    board_dir = run_dir if settings.run_dir else settings.results_dir
    print(
        f"saferl_tf: training {settings.agent} on {settings.env}; logs in {run_dir} "
        f"(view with: tensorboard --logdir {board_dir})",
        file=sys.stderr,
        flush=True,
    )
    warning = cost_limit_warning(config, settings.env, settings.episode_length)
    if warning:
        print(f"saferl_tf: warning: {warning}", file=sys.stderr, flush=True)
    if not tf.config.list_physical_devices("GPU"):
        hint = cls.cpu_hint(config)
        if hint:
            print(f"saferl_tf: {hint}", file=sys.stderr, flush=True)
    envs = envs_lib.make_vector(settings.env, settings.num_envs, seed=env_seed, **env_kwargs)
    logger = Logger(run_dir)
    try:
        agent = make_agent(
            settings.agent,
            envs.observation_space,
            envs.action_space,
            config,
            logger=logger,
            directory=run_dir,
            num_envs=settings.num_envs,
            seed=settings.seed,
            task=envs_lib.task_functions(settings.env),
        )
        trainer = Trainer(
            agent,
            envs,
            LoopSettings(
                total_steps=settings.total_steps,
                eval_every=settings.eval_every,
                eval_episodes=settings.eval_episodes,
                checkpoint_every=settings.checkpoint_every,
                log_every=settings.log_every,
                progress=settings.progress,
                eval_video_every=settings.eval_video_every,
                eval_video_size=settings.eval_video_size,
            ),
            logger,
            checkpoint_dir,
            make_eval_env=lambda: envs_lib.make(
                settings.env,
                seed=env_seed + 999_983,
                render=settings.eval_video_every > 0,
                **env_kwargs,
            ),
        )
        trainer.restore()  # Before anything is written: a refused resume changes nothing.
        _write_json(run_dir / CONFIG_FILE, record)
        summary = trainer.run()
    finally:
        envs.close()
        logger.close()
    summary = {k: float(v) for k, v in summary.items()}
    previous = run_dir / SUMMARY_FILE
    if previous.exists():  # A resumed run keeps what it does not measure again.
        with contextlib.suppress(ValueError):
            summary = {**json.loads(previous.read_text()), **summary}
    _write_json(run_dir / SUMMARY_FILE, summary)
    print(
        f"saferl_tf: done at step {int(summary['env_steps'])}; logs in {run_dir}", file=sys.stderr
    )
    return summary
