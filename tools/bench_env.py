"""Environment throughput: bare safety-gymnasium vs the package's training loop.

Measures, in one run and interleaved (so that machine noise hits all alike):

1. bare: a plain safety-gymnasium loop with random actions;
2. loop, 1 env: ``Trainer.run`` with ``RandomAgent`` on one in-process env
   (acting, replay, episode files and logging included);
3. loop, N workers: the same with ``--num_envs=N`` (one environment in the
   training process, the others in worker processes).

Each figure is steady-state collection: from after the first reset (which
builds the world, about 3 s) to the last step, with the reset after every
1000-step episode included. Prints a Markdown table of environment steps per
second and the ratio to the bare loop. Usage::

    .venv/bin/python tools/bench_env.py [--env_id=SafetyPointGoal2-v0] [--steps=5000]
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time

from absl import app, flags

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

flags.DEFINE_string("env_id", "SafetyPointGoal2-v0", "safety-gymnasium task.")
flags.DEFINE_integer("steps", 6000, "Environment steps per measurement.")
flags.DEFINE_integer("repeats", 3, "Measurements per configuration (interleaved).")
flags.DEFINE_integer("workers", 2, "Worker processes for the parallel configuration.")
FLAGS = flags.FLAGS


def bare(env_id: str, steps: int, seed: int) -> float:
    from saferl_tf.envs.safety_gym import import_safety_gymnasium

    env = import_safety_gymnasium().make(env_id)
    env.action_space.seed(seed)
    env.reset(seed=seed)
    start = time.perf_counter()
    for _ in range(steps):
        *_, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            env.reset()
    elapsed = time.perf_counter() - start
    env.close()
    return steps / elapsed


def package_loop(env_id: str, steps: int, seed: int, num_envs: int) -> float:
    from saferl_tf import envs as envs_lib
    from saferl_tf.agents import make_agent
    from saferl_tf.training.logger import Logger
    from saferl_tf.training.loop import LoopSettings, Trainer

    with tempfile.TemporaryDirectory() as run_dir:
        envs = envs_lib.make_vector(f"sgym_{env_id}", num_envs, seed=seed)
        logger = Logger(run_dir)
        agent = make_agent(
            "random",
            envs.observation_space,
            envs.action_space,
            directory=run_dir,
            num_envs=num_envs,
            seed=seed,
        )
        trainer = Trainer(
            agent,
            envs,
            LoopSettings(
                total_steps=steps, eval_every=0, checkpoint_every=10 * steps, progress=False
            ),  # fmt: skip
            logger,
            f"{run_dir}/checkpoints",
        )
        summary = trainer.run()
        envs.close()
        logger.close()
    return summary["loop_steps"] / summary["loop_seconds"]


def main(argv):
    del argv
    configurations = {
        "bare safety-gymnasium loop": lambda seed: bare(FLAGS.env_id, FLAGS.steps, seed),
        "package loop, 1 env": lambda seed: package_loop(FLAGS.env_id, FLAGS.steps, seed, 1),
        f"package loop, {FLAGS.workers} workers": lambda seed: package_loop(
            FLAGS.env_id, FLAGS.steps, seed, FLAGS.workers
        ),
    }
    results = {name: [] for name in configurations}
    for repeat in range(FLAGS.repeats):
        for name, measure in configurations.items():
            results[name].append(measure(repeat))
            print(f"  {name}: {results[name][-1]:.0f} steps/s", flush=True)
    base = statistics.mean(results["bare safety-gymnasium loop"])
    print(
        f"\n{FLAGS.env_id}, random actions, {FLAGS.steps} environment steps per "
        f"measurement (steady state, resets included), mean of {FLAGS.repeats} interleaved runs, "
        f"{os.cpu_count()} cores\n"
    )
    print("| configuration | steps/s | ratio to bare |")
    print("| --- | ---: | ---: |")
    for name, values in results.items():
        mean = statistics.mean(values)
        print(f"| {name} | {mean:.0f} | {mean / base:.2f}x |")


if __name__ == "__main__":
    app.run(main)
