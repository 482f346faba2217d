"""Tuner overhead per trial and the speed-up of two workers, in one run.

Runs the same short study twice, with ``--workers=1`` and ``--workers=2``:
training trials of ``launchers/train.py`` (RandomAgent on a safety-gymnasium
task), an initial Sobol design, then Trieste's constrained proposals. Reports
for each: wall time, the summed run time of the trial processes, the tuner's
own time per trial (wall minus trial time, for one worker) and the mean time
spent proposing a point; then the speed-up of two workers. Usage::

    .venv/bin/python tools/bench_tuner.py [--trials=6] [--trial_steps=1000]
"""

from __future__ import annotations

import io
import os
import statistics
import tempfile
import time

from absl import app, flags

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

flags.DEFINE_string("agent", "random", "Agent to tune.")
flags.DEFINE_string("env", "sgym_Safexp-PointGoal1-v0", "Environment of the trials.")
flags.DEFINE_string("space", "action_repeat:1:4:int", "Search space (changes the outcome).")
flags.DEFINE_integer("trials", 6, "Trials per study.")
flags.DEFINE_integer("initial", 4, "Initial design points.")
flags.DEFINE_integer("trial_steps", 1000, "Environment steps per trial.")
flags.DEFINE_integer("episode_length", 200, "Episode length of the trials.")
FLAGS = flags.FLAGS


def run_study(workers: int, directory: str) -> dict:
    from saferl_tf.bo.study import DONE
    from saferl_tf.bo.trials import TrialSpec
    from saferl_tf.bo.tuner import Tuner, TunerSettings

    spec = TrialSpec(
        agent=FLAGS.agent,
        env=FLAGS.env,
        trial_steps=FLAGS.trial_steps,
        eval_episodes=1,
        train_args=(f"--episode_length={FLAGS.episode_length}",),
    )
    settings = TunerSettings(
        study_dir=directory,
        space=FLAGS.space,
        trials=FLAGS.trials,
        initial=FLAGS.initial,
        workers=workers,
        cost_limit=25.0,
    )
    start = time.monotonic()
    study = Tuner(settings, spec, out=io.StringIO()).run()
    wall = time.monotonic() - start
    trial_seconds = sum(t.duration for t in study.trials)
    proposals = [t.propose_seconds for t in study.trials if t.source != "sobol"]
    return {
        "wall": wall,
        "trial_seconds": trial_seconds,
        "done": len(study.with_status(DONE)),
        "propose": statistics.mean(proposals) if proposals else 0.0,
    }


def main(argv):
    del argv
    results = {}
    for workers in (1, 2):
        with tempfile.TemporaryDirectory() as directory:
            results[workers] = run_study(workers, directory)
            print(f"  workers={workers}: {results[workers]}", flush=True)
    one, two = results[1], results[2]
    print(
        f"\n{FLAGS.trials} trials ({FLAGS.initial} Sobol + {FLAGS.trials - FLAGS.initial} "
        f"Trieste ECI), each {FLAGS.agent} for {FLAGS.trial_steps} steps on {FLAGS.env} "
        f"(episodes of {FLAGS.episode_length}), {os.cpu_count()} cores\n"
    )
    print("| workers | wall s | trial processes s (sum) | trials done | mean proposal s |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    for workers, r in results.items():
        print(
            f"| {workers} | {r['wall']:.1f} | {r['trial_seconds']:.1f} | {r['done']} | "
            f"{r['propose']:.1f} |"
        )
    overhead = (one["wall"] - one["trial_seconds"]) / FLAGS.trials
    print(f"\ntuner time per trial outside the training runs (1 worker): {overhead:.1f} s")
    print(f"speed-up of 2 workers over 1: {one['wall'] / two['wall']:.2f}x")


if __name__ == "__main__":
    app.run(main)
