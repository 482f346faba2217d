"""Trains agents x environments x seeds: ``saferl-sweep``.

    saferl-sweep --agents=lambda,cmbpo \\
        --envs=sgym_SafetyPointGoal1-v0,saferl_ConstrainedPendulum-v0 --seeds=0-4 \\
        [--config=...] [--executor=local --workers=2 | --executor=ray --address=auto]

(``python launchers/sweep.py`` and ``python -m saferl_tf.cli.sweep`` are the
same program.) Each run is a ``saferl-train`` run in
``<results_dir>/<agent>/<env>/<seed>/``, the tree ``saferl-plot`` reads.
Every run flag of ``saferl-train`` applies to all runs (``--config`` and
``--config.KEY=VALUE`` must suit every agent). Runs go to ``--workers`` child
processes (default 1) or to a Ray cluster; a progress block every 30 s names
what is pending, running (with its last step and return), finished and
failed. Killed and started again with the same command, the sweep skips
finished runs and resumes the rest from their checkpoints.
"""

from __future__ import annotations

from collections.abc import Sequence

from absl import flags

from saferl_tf import cli
from saferl_tf.cli.executors import check_executor_flags, define_executor_flags
from saferl_tf.cli.train import define_run_flags, run_jobs, settings_from_flags

FLAGS = flags.FLAGS


def define_flags() -> None:
    flags.DEFINE_list("agents", [], "Registered agents to train (comma-separated).")
    flags.DEFINE_list("envs", [], "Environment ids (comma-separated).")
    flags.DEFINE_list("seeds", ["0"], "Seeds: comma-separated integers or ranges (0-4).")
    define_run_flags()
    define_executor_flags("Runs at once (default: 1 locally; on Ray, as many as the cluster fits).")


def run(argv: Sequence[str] | None = None) -> None:
    """The ``saferl-sweep`` entry point; ``argv`` as ``sys.argv`` (program name first)."""
    cli.launch(__doc__, define_flags, _sweep, argv)


def _sweep():
    cli.import_user_modules(FLAGS.imports)
    from saferl_tf.errors import ConfigError
    from saferl_tf.training.experiment import complete_schedule, describe, parse_seeds, resolve

    check_executor_flags()
    if not FLAGS.agents or not FLAGS.envs:
        raise ConfigError("name what to train: --agents=a,b and --envs=x,y (and --seeds=0-4)")
    seeds = parse_seeds(FLAGS.seeds)
    runs = [complete_schedule(settings_from_flags(env, agent, seed))
            for agent in FLAGS.agents for env in FLAGS.envs for seed in seeds]  # fmt: skip
    for run_settings in runs:
        resolve(run_settings)  # Every check before anything starts.
    if FLAGS.dry_run:
        for agent in FLAGS.agents:
            for env in FLAGS.envs:
                for line in describe(settings_from_flags(env, agent, 0), seeds):
                    print(f"dry run: {line}")
        return
    run_jobs(runs)


if __name__ == "__main__":
    run()
