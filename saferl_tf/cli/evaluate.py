"""Evaluates a trained run: ``saferl-evaluate --run_dir=results/<agent>/<env>/<seed>``.

(``python launchers/evaluate.py`` and ``python -m saferl_tf.cli.evaluate`` are
the same program.) Restores the agent from the run's config.json and a
checkpoint (``--checkpoint=latest`` or an environment step), plays
``--episodes`` episodes (episode k resets with seed ``--seed`` + k; with
``--num_envs`` > 1 in parallel worker processes), prints a table per episode
with the mean ± std and IQM of return, cost and cost rate and whether the
mean cost is within the agent's cost limit, and writes the same as
``checkpoints/eval_<step>.json``. ``--video=PATH.mp4`` films the episodes
from the environment's own camera with the return and cost written on each
frame. The run's own files are only read, so a run may be evaluated while it
trains. ``--env`` evaluates on another task with the same observation and
action spaces (for example a harder level).
"""

from __future__ import annotations

from collections.abc import Sequence

from absl import flags

from saferl_tf import cli

FLAGS = flags.FLAGS


def define_flags() -> None:
    flags.DEFINE_string("run_dir", None, "The run folder saferl-train wrote (required).")
    flags.DEFINE_string("checkpoint", "latest", "'latest' or the environment step of a checkpoint.")
    flags.DEFINE_integer("episodes", 10, "Episodes to play.")
    flags.DEFINE_string("env", None, "Another task with the same spaces (default: the run's).")
    flags.DEFINE_string("video", None, "Film the episodes into this new .mp4 file.")
    flags.DEFINE_integer("video_size", 480, "Height and width of the video in pixels (even).")
    flags.DEFINE_bool(
        "deterministic", True,
        "The agent's evaluation policy (the mean action for most agents; CMBPO, CPO and TRPO "
        "sample their Gaussian policy unless their config says evaluate_with_samples=false); "
        "--nodeterministic: the policy the agent collects with in training.",
    )  # fmt: skip
    flags.DEFINE_integer("seed", 0, "Episode k resets its environment with seed + k.")
    flags.DEFINE_integer("num_envs", 1, "Environments played in parallel worker processes.")
    flags.DEFINE_list("imports", [], "Modules or .py files to import first (to register agents).")


def run(argv: Sequence[str] | None = None) -> None:
    """The ``saferl-evaluate`` entry point; ``argv`` as ``sys.argv`` (program name first)."""
    cli.launch(__doc__, define_flags, _evaluate, argv)


def _evaluate():
    from saferl_tf.errors import ConfigError

    if not FLAGS.run_dir:
        raise ConfigError("--run_dir is required: the run folder to evaluate")
    cli.import_user_modules(FLAGS.imports)
    from saferl_tf.training.run_evaluation import EvalSettings, Evaluation, evaluate_run

    settings = EvalSettings(
        run_dir=FLAGS.run_dir,
        checkpoint=FLAGS.checkpoint,
        episodes=FLAGS.episodes,
        env=FLAGS.env,
        video=FLAGS.video,
        video_size=FLAGS.video_size,
        deterministic=FLAGS.deterministic,
        seed=FLAGS.seed,
        num_envs=FLAGS.num_envs,
    )
    if FLAGS.dry_run:
        evaluation = Evaluation(settings)
        print(f"dry run: would evaluate {evaluation.record['agent']} from "
              f"{evaluation.checkpoint_paths[0]} on {evaluation.env_id}: "
              f"{settings.episodes} episodes")  # fmt: skip
        return
    evaluate_run(settings)


if __name__ == "__main__":
    run()
