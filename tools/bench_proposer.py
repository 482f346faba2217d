"""The tuner's Trieste proposal time on Gardner's constrained problem, this
checkout against another (e.g. an older commit's worktree), side by side.

Each side runs in its own process (one BLAS thread) on the same data: the
problem's values at ``--points`` Sobol points, then ``--proposals`` successive
expected-constrained-improvement proposals, each told its true outcome before
the next. Prints the seconds per proposal after the first (which imports and
traces) and the ratio. Usage::

    .venv/bin/python tools/bench_proposer.py [--compare_root=/path/to/other/checkout] \
        [--points=20] [--proposals=8]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from absl import app, flags

flags.DEFINE_string("compare_root", None, "Another checkout to time the same way (None: skip).")
flags.DEFINE_integer("points", 20, "Sobol points before the proposals.")
flags.DEFINE_integer("proposals", 8, "Proposals timed (the first is reported apart).")
flags.DEFINE_bool("worker", False, "Internal: time this checkout and print JSON.")
FLAGS = flags.FLAGS


def _time_here() -> dict:
    import numpy as np
    from scipy.stats import qmc
    from threadpoolctl import threadpool_limits

    from saferl_tf.bo.proposers import TriesteConstrained
    from saferl_tf.bo.study import Outcome
    from saferl_tf.bo.synthetic import PROBLEMS

    problem = PROBLEMS["gardner"]
    low = np.array([p.low for p in problem.space.parameters])
    high = np.array([p.high for p in problem.space.parameters])
    exponent = int(np.ceil(np.log2(FLAGS.points)))
    units = list(qmc.Sobol(2, scramble=True, seed=0).random_base2(exponent)[: FLAGS.points])

    def outcome(unit):
        x = (low + unit * (high - low))[None]
        value, constraint = float(problem.objective(x)[0]), float(problem.constraint(x)[0])
        return Outcome(value, constraint, constraint, value, constraint, problem.limit, -value)

    outcomes = [outcome(unit) for unit in units]
    proposer = TriesteConstrained(2, seed=0)
    times = []
    with threadpool_limits(1, user_api="blas"):
        for _ in range(FLAGS.proposals):
            started = time.perf_counter()
            unit = proposer.propose(np.asarray(units), outcomes, np.zeros((0, 2)))
            times.append(time.perf_counter() - started)
            units.append(unit)
            outcomes.append(outcome(unit))
    return {"first": times[0], "later": sum(times[1:]) / max(len(times) - 1, 1)}


def main(argv):
    del argv
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if FLAGS.worker:
        print(json.dumps(_time_here()))
        return
    roots = {"this checkout": Path(__file__).resolve().parent.parent}
    if FLAGS.compare_root:
        roots["compared"] = Path(FLAGS.compare_root).resolve()
    results = {}
    for name, root in roots.items():
        command = [sys.executable, str(Path(__file__).resolve()), "--worker",
                   f"--points={FLAGS.points}", f"--proposals={FLAGS.proposals}"]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(root)}
        done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=root)
        if done.returncode:
            sys.exit(f"error: timing {name} failed: {done.stderr.strip().splitlines()[-1]}")
        results[name] = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"\nTrieste ECI proposals on Gardner's problem, {FLAGS.points} points + "
          f"{FLAGS.proposals} proposals:\n")  # fmt: skip
    print("| checkout | first proposal s | later proposals s (mean) |")
    print("| --- | ---: | ---: |")
    for name, timing in results.items():
        print(f"| {name} | {timing['first']:.2f} | {timing['later']:.3f} |")
    if "compared" in results:
        ratio = results["compared"]["later"] / results["this checkout"]["later"]
        print(f"\nlater proposals: the compared checkout takes {ratio:.2f}x this one's time")


if __name__ == "__main__":
    app.run(main)
