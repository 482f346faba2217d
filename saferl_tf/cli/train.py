"""Trains an agent: ``saferl-train --env=sgym_Safexp-PointGoal2-v0 --safety``.

(``python launchers/train.py`` and ``python -m saferl_tf.cli.train`` are the
same program.) Logs to ``<results_dir>/<agent>/<env>/<seed>/`` (TensorBoard
events, metrics.jsonl, config.json, checkpoints, replay), or to the folder
``--run_dir`` names; running the same command again resumes from the newest
checkpoint. ``--seeds=0-4`` trains several seeds, each in its own folder: one
after another, ``--workers=N`` at once as child processes, or as Ray tasks with
``--executor=ray [--address=auto]`` (see ``saferl-sweep`` for several agents
and environments). ``--config=debug`` picks a preset from
``saferl_tf/configs/<agent>.yaml`` (or a YAML/JSON file); ``--config.KEY=VALUE``
sets one key of the agent's config.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path

from absl import flags

from saferl_tf import cli
from saferl_tf.cli.executors import check_executor_flags, define_executor_flags, executor_from_flags

FLAGS = flags.FLAGS


def define_flags() -> None:
    flags.DEFINE_string("env", "sgym_Safexp-PointGoal2-v0", "Environment id (sgym_/gym_/saferl_).")
    flags.DEFINE_string("agent", "lambda", "Registered agent name (default: LAMBDA).")
    flags.DEFINE_string(
        "run_dir",
        None,
        "The run folder (default: <results_dir>/<agent>/<env>/<seed>). "
        "--log_dir is its deprecated old name.",
    )
    flags.DEFINE_integer("seed", 0, "Random seed.")
    flags.DEFINE_list(
        "seeds", [],
        "Several seeds, one run folder each (e.g. 0,1,2 or 0-4): one after another, or "
        "--workers at once, or on Ray with --executor=ray.",
    )  # fmt: skip
    define_run_flags()
    define_executor_flags("Seeds trained at once (default 1: one after another, in this process).")


def define_run_flags() -> None:
    """The flags of a training run other than what it trains and where (shared
    with saferl-sweep)."""
    flags.DEFINE_string(
        "config", "", "Comma-separated presets (saferl_tf/configs/<agent>.yaml) or config files."
    )
    flags.DEFINE_bool("safety", None, "Cost enters the objective (otherwise it is only logged).")
    flags.DEFINE_string("results_dir", "results", "Root of the results tree.")
    flags.DEFINE_integer(
        "total_steps",
        None,
        "Environment steps to train for "
        "(default: the environment's budget; 1M where it names none).",
    )
    flags.DEFINE_integer(
        "eval_every", 10_000, "Evaluate every N environment steps and at the end (0: never)."
    )
    flags.DEFINE_integer("eval_episodes", 1, "Episodes per evaluation.")
    flags.DEFINE_integer(
        "eval_video_every", 0,
        "Film the first evaluation episode every N environment steps into "
        "<run_dir>/videos/*.mp4 and TensorBoard's Images tab (0: never).",
    )  # fmt: skip
    flags.DEFINE_integer("eval_video_size", 256, "Height and width of those videos in pixels.")
    flags.DEFINE_integer(
        "checkpoint_every",
        None,
        "Checkpoint every N environment steps (default: a tenth of total_steps, at most 10k).",
    )
    flags.DEFINE_integer("log_every", 1_000, "Log speed every N environment steps.")
    flags.DEFINE_integer("action_repeat", None, "Action repeat (default: the agent config's).")
    flags.DEFINE_enum("observation", None, ["vector", "pixels"], "Observation kind.")
    flags.DEFINE_integer("episode_length", None, "Episode length in environment steps.")
    flags.DEFINE_integer(
        "distraction_dimensions", 0,
        "Append this many distractor dimensions (switching non-linear dynamics, "
        "uncorrelated with the task) to vector observations.",
    )  # fmt: skip
    flags.DEFINE_integer("num_envs", 1, "Environments stepped in parallel worker processes.")
    flags.DEFINE_bool("jit", None, "Compile train steps with XLA (default: the agent config's).")
    flags.DEFINE_bool(
        "progress", True, "Show a progress bar (a line every 30 s without a terminal)."
    )
    flags.DEFINE_list("imports", [], "Modules or .py files to import first (to register agents).")


def settings_from_flags(env: str, agent: str, seed: int, run_dir: str | None = None):
    """The ``RunSettings`` the run flags describe, for one agent, env and seed."""
    from saferl_tf.training.experiment import RunSettings

    return RunSettings(
        env=env,
        agent=agent,
        config=FLAGS.config,
        overrides=dict(cli.CONFIG_OVERRIDES),
        run_dir=run_dir,
        results_dir=FLAGS.results_dir,
        seed=seed,
        total_steps=FLAGS.total_steps,
        eval_every=FLAGS.eval_every,
        eval_episodes=FLAGS.eval_episodes,
        checkpoint_every=FLAGS.checkpoint_every,
        log_every=FLAGS.log_every,
        num_envs=FLAGS.num_envs,
        episode_length=FLAGS.episode_length,
        distraction_dimensions=FLAGS.distraction_dimensions,
        action_repeat=FLAGS.action_repeat,
        observation=FLAGS.observation,
        safety=FLAGS.safety,
        jit=FLAGS.jit,
        progress=FLAGS.progress,
        eval_video_every=FLAGS.eval_video_every,
        eval_video_size=FLAGS.eval_video_size,
    )


def imports_for_jobs() -> tuple[str, ...]:
    """--imports as child processes elsewhere can use them (.py files absolute)."""
    return tuple(str(Path(i).resolve()) if i.endswith(".py") else i for i in FLAGS.imports)


def run_jobs(runs) -> None:
    """Trains ``runs`` (complete ``RunSettings``) through the executor the flags
    name; exits 1 naming the runs that failed."""
    from saferl_tf.distributed.sweep import run_sweep

    executor = executor_from_flags(FLAGS.results_dir)
    results = run_sweep(runs, executor, imports=imports_for_jobs())
    failed = [result for result in results if not result.ok]
    if failed:
        for result in failed:
            print(f"error: {result.job.name}: {result.error}", file=sys.stderr)
        sys.exit(1)


def run(argv: Sequence[str] | None = None) -> None:
    """The ``saferl-train`` entry point; ``argv`` as ``sys.argv`` (program name first)."""
    cli.launch(__doc__, define_flags, _train, argv)


def _train():
    run_dir = cli.run_dir_flag()
    cli.import_user_modules(FLAGS.imports)
    from saferl_tf.errors import ConfigError
    from saferl_tf.training.experiment import (
        complete_schedule,
        describe,
        parse_seeds,
        resolve,
        train_seeds,
    )

    check_executor_flags()
    seeds = parse_seeds(FLAGS.seeds) if FLAGS.seeds else [FLAGS.seed]
    settings = settings_from_flags(FLAGS.env, FLAGS.agent, FLAGS.seed, run_dir)
    through_executor = FLAGS.executor == "ray" or (FLAGS.workers or 1) > 1
    if through_executor and run_dir:
        raise ConfigError(
            "--run_dir names one folder; with --executor=ray or --workers the runs go to "
            "<results_dir>/<agent>/<env>/<seed>: give --results_dir"
        )
    if FLAGS.dry_run:
        for line in describe(settings, seeds):
            print(f"dry run: {line}")
        return
    if not through_executor:
        train_seeds(settings, seeds)
        return
    runs = [complete_schedule(dataclasses.replace(settings, seed=seed)) for seed in seeds]
    for run in runs:
        resolve(run)  # Every check before anything starts.
    run_jobs(runs)


if __name__ == "__main__":
    run()
