"""The executor flags shared by saferl-train (--seeds), saferl-sweep and
saferl-tune, defined once here: where runs and trials run."""

from __future__ import annotations

from pathlib import Path

from absl import flags

from saferl_tf.errors import ConfigError

FLAGS = flags.FLAGS
RAY_ONLY = ("address", "trial_cpus", "trial_gpus", "storage")


def define_executor_flags(workers_help: str) -> None:
    flags.DEFINE_enum(
        "executor", "local", ["local", "ray"],
        "Where runs/trials run: 'local' child processes on this machine, or 'ray' tasks on a "
        "Ray cluster (the optional extra: pip install -e .[distributed]).",
    )  # fmt: skip
    flags.DEFINE_integer("workers", None, workers_help)
    flags.DEFINE_string(
        "address", None,
        "Ray cluster to join: auto, or HOST:PORT (default: start a local Ray instance).",
    )  # fmt: skip
    flags.DEFINE_float("trial_cpus", 1.0, "CPUs each run or trial declares to Ray.")
    flags.DEFINE_float("trial_gpus", 0.0, "GPUs each run or trial declares to Ray.")
    flags.DEFINE_integer(
        "max_retries", 3,
        "Times a run or trial whose process was stopped from outside (a killed worker, a lost "
        "node) is started again, resuming from its checkpoint; one that fails on its own "
        "(an error) is not retried.",
    )  # fmt: skip
    flags.DEFINE_string(
        "storage", None,
        "With --executor=ray: a folder every node mounts at the same path, where runs write "
        "directly (copied into the results tree when they end). Without it, run folders come "
        "back to this machine through Ray at every checkpoint and at the end.",
    )  # fmt: skip


def check_executor_flags() -> None:
    """One-line errors for flags that mean nothing with the chosen executor."""
    if FLAGS.executor != "ray":
        given = [f"--{name}" for name in RAY_ONLY if FLAGS[name].present]
        if given:
            raise ConfigError(f"{', '.join(given)} only apply with --executor=ray")
    if FLAGS.workers is not None and FLAGS.workers < 1:
        raise ConfigError(f"--workers must be a positive integer, got {FLAGS.workers}")
    if FLAGS.max_retries < 0:
        raise ConfigError(f"--max_retries must be >= 0, got {FLAGS.max_retries}")


def executor_from_flags(root: str | Path):
    """The executor the flags name, for run folders under ``root``."""
    from saferl_tf.distributed import make_executor

    check_executor_flags()
    if FLAGS.executor == "local":
        return make_executor("local", root, FLAGS.workers, FLAGS.max_retries)
    return make_executor("ray", root, FLAGS.workers, FLAGS.max_retries, address=FLAGS.address,
                         cpus=FLAGS.trial_cpus, gpus=FLAGS.trial_gpus,
                         storage=FLAGS.storage)  # fmt: skip
