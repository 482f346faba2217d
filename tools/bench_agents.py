"""What each agent costs on this machine: training speed and peak memory.

Runs ``launchers/train.py`` once per row, each in a fresh process, and reads
back the run's own ``train/steps_per_second`` rows (logged every
``--log_every`` environment steps) and the process's peak resident memory
(``ru_maxrss`` of the child from ``wait4``). The speed is the steps after the
agent's warm-up (random steps before its first update) and its first round of
updates, over the time they took (update rounds and resets included), so it is
the speed of learning, not of collecting random data; the wall time includes
start-up and compilation. Prints a Markdown table::

    .venv/bin/python tools/bench_agents.py [--rows=random,lambda_debug,...] [--scale=1]

Rows (``--rows``; each a fixed command, shortened by ``--scale`` < 1):

- ``random``: RandomAgent on sgym_SafetyPointGoal1-v0 (the environment alone)
- ``lambda_debug``: LAMBDA's ``debug`` preset on saferl_PointHazard-v0
- ``lambda_hazard``: LAMBDA's ``hazard`` preset (the README's first run) there
- ``lambda_cpu``: LAMBDA's ``vector,cpu`` preset on sgym_SafetyPointGoal1-v0
  (warm-up shortened to 1,000 steps so that rounds of updates are measured)
- ``cem``, ``pessimistic``: the planners on saferl_ConstrainedPendulum-v0
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from absl import app, flags

ROOT = Path(__file__).resolve().parent.parent

# name -> (train.py arguments, environment steps, warm-up steps to skip)
ROWS = {
    "random": (["--agent=random", "--env=sgym_SafetyPointGoal1-v0"], 4000, 0),
    "lambda_debug": (
        ["--agent=lambda", "--env=saferl_PointHazard-v0", "--safety", "--config=debug"],
        4000,
        100,
    ),
    "lambda_hazard": (
        ["--agent=lambda", "--env=saferl_PointHazard-v0", "--safety", "--config=hazard"],
        3000,
        1000,
    ),
    "lambda_cpu": (
        [
            "--agent=lambda",
            "--env=sgym_SafetyPointGoal1-v0",
            "--safety",
            "--config=vector,cpu",
            "--nojit",
            "--config.warmup_steps=1000",
        ],  # fmt: skip
        3000,
        1000,
    ),
    "cem": (["--agent=cem", "--env=saferl_ConstrainedPendulum-v0", "--safety"], 800, 100),
    "pessimistic": (
        ["--agent=pessimistic", "--env=saferl_ConstrainedPendulum-v0", "--safety"],
        800,
        100,
    ),
}

flags.DEFINE_list("rows", list(ROWS), f"Rows to measure, of: {', '.join(ROWS)}.")
flags.DEFINE_float("scale", 1.0, "Multiply each row's steps (for a quick check).")
flags.DEFINE_integer("log_every", 200, "Speed rows every N environment steps.")
FLAGS = flags.FLAGS


def measure(name: str, scale: float, log_every: int) -> dict:
    arguments, steps, warmup = ROWS[name]
    steps = max(int(steps * scale), warmup + 2 * log_every)
    with tempfile.TemporaryDirectory() as folder:
        command = [
            sys.executable, str(ROOT / "launchers" / "train.py"), *arguments,
            f"--run_dir={folder}/run", f"--total_steps={steps}", "--eval_every=0",
            f"--log_every={log_every}", "--progress=false", "--seed=0",
        ]  # fmt: skip
        log = Path(folder, "output.txt")
        start = time.perf_counter()
        with log.open("w") as output:
            process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
            # wait4 gives this child's own peak memory (and its waited-for workers').
            _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        if os.waitstatus_to_exitcode(status) != 0:
            sys.exit(f"error: row {name} failed:\n{log.read_text()[-3000:]}")
        text = Path(folder, "run", "metrics.jsonl").read_text()
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    # Each row is the speed over the last log_every steps; the time of the whole
    # stretch after the warm-up (update rounds and resets included) is their sum.
    windows = [(r["step"], r["train/steps_per_second"]) for r in rows
               if "train/steps_per_second" in r and r["step"] > warmup + log_every]  # fmt: skip
    previous = [warmup + log_every] + [step for step, _ in windows[:-1]]
    seconds = sum((step - before) / speed for (step, speed), before in zip(windows, previous))
    measured = windows[-1][0] - previous[0] if windows else 0
    return {
        "row": name,
        "steps": steps,
        "steps_per_second": measured / seconds if windows else float("nan"),
        "wall_seconds": wall,
        "peak_gib": usage.ru_maxrss / 2**20,  # KiB on Linux.
    }


def main(argv):
    del argv
    unknown = sorted(set(FLAGS.rows) - set(ROWS))
    if unknown:
        sys.exit(f"error: unknown rows {', '.join(unknown)}; accepted: {', '.join(ROWS)}")
    results = [measure(name, FLAGS.scale, FLAGS.log_every) for name in FLAGS.rows]
    print("| row | command | env steps | steps/s after warm-up | wall s | peak memory GiB |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for result in results:
        arguments = " ".join(ROWS[result["row"]][0])
        print(
            f"| {result['row']} | `{arguments}` | {result['steps']} | "
            f"{result['steps_per_second']:.3g} | {result['wall_seconds']:.0f} | "
            f"{result['peak_gib']:.2f} |"
        )


if __name__ == "__main__":
    app.run(main)
