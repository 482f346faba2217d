"""Trains an agent: ``saferl-train --env=sgym_Safexp-PointGoal2-v0 --safety``.

(``python launchers/train.py`` and ``python -m saferl_tf.cli.train`` are the
same program.) Logs to ``<results_dir>/<agent>/<env>/<seed>/`` (TensorBoard
events, metrics.jsonl, config.json, checkpoints, replay), or to the folder
``--run_dir`` names; running the same command again resumes from the newest
checkpoint. ``--seeds=0,1,2`` trains several seeds one after another, each in
its own folder. ``--config=debug`` picks a preset from
``saferl_tf/configs/<agent>.yaml`` (or a YAML/JSON file); ``--config.KEY=VALUE``
sets one key of the agent's config.
"""

from __future__ import annotations

from collections.abc import Sequence

from absl import flags

from saferl_tf import cli

FLAGS = flags.FLAGS


def define_flags() -> None:
    flags.DEFINE_string("env", "sgym_Safexp-PointGoal2-v0", "Environment id (sgym_/gym_/saferl_).")
    flags.DEFINE_string("agent", "lambda", "Registered agent name (default: LAMBDA).")
    flags.DEFINE_string(
        "config", "", "Comma-separated presets (saferl_tf/configs/<agent>.yaml) or config files."
    )
    flags.DEFINE_bool("safety", None, "Cost enters the objective (otherwise it is only logged).")
    flags.DEFINE_string(
        "run_dir",
        None,
        "The run folder (default: <results_dir>/<agent>/<env>/<seed>). "
        "--log_dir is its deprecated old name.",
    )
    flags.DEFINE_string("results_dir", "results", "Root of the results tree.")
    flags.DEFINE_integer("seed", 0, "Random seed.")
    flags.DEFINE_list(
        "seeds", [], "Several seeds, trained one after another, one run folder each (e.g. 0,1,2)."
    )
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


def run(argv: Sequence[str] | None = None) -> None:
    """The ``saferl-train`` entry point; ``argv`` as ``sys.argv`` (program name first)."""
    cli.launch(__doc__, define_flags, _train, argv)


def _train():
    run_dir = cli.run_dir_flag()
    cli.import_user_modules(FLAGS.imports)
    from saferl_tf.training.experiment import RunSettings, describe, parse_seeds, train_seeds

    seeds = parse_seeds(FLAGS.seeds) if FLAGS.seeds else [FLAGS.seed]
    settings = RunSettings(
        env=FLAGS.env,
        agent=FLAGS.agent,
        config=FLAGS.config,
        overrides=dict(cli.CONFIG_OVERRIDES),
        run_dir=run_dir,
        results_dir=FLAGS.results_dir,
        seed=FLAGS.seed,
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
    if FLAGS.dry_run:
        for line in describe(settings, seeds):
            print(f"dry run: {line}")
        return
    train_seeds(settings, seeds)


if __name__ == "__main__":
    run()
