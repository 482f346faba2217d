"""LambdaAgent update times, XLA against graph mode, vector and pixel observations.

For each observation kind builds the agent at the given config (the paper's
defaults unless ``--config``) for a real safety-gymnasium task, fills its replay
with random steps of the task's shapes, and times ``--repeats``
model updates and actor-critic updates with ``jit=True`` and ``jit=False``
(``xla_cpu_convolutions`` on, so that XLA mode compiles the pixel model
update too; after one untimed call that traces and compiles; one agent at a time, so
the two modes run one after the other, not interleaved). Reports medians, the ratio
graph/XLA, the first-call (trace + compile) time, the environment's own speed
with random actions, and the loop throughput these imply at the schedule's
update ratio (``train_steps`` updates every ``train_every`` environment steps).
Usage::

    .venv/bin/python tools/bench_lambda.py [--observations=vector,pixels] [--repeats=5]
"""

from __future__ import annotations

import gc
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app, flags  # noqa: E402

flags.DEFINE_list("observations", ["vector", "pixels"], "Observation kinds to time.")
flags.DEFINE_string("env", "sgym_SafetyPointGoal1-v0", "Task whose spaces the agent gets.")
flags.DEFINE_string("config", "", "LambdaAgent presets (default: the paper's settings).")
flags.DEFINE_integer("repeats", 5, "Timed updates per configuration.")
flags.DEFINE_integer("env_steps", 300, "Random environment steps to time the task itself.")
flags.DEFINE_bool("mixed_precision", False, "Also time with mixed precision (for GPUs).")
FLAGS = flags.FLAGS


def build(observation: str, jit: bool, spaces_, mixed: bool = False):
    import numpy as np

    from saferl_tf.agents import LambdaAgent, Transition
    from saferl_tf.agents.base import preset_names
    from saferl_tf.config import build_config

    overrides = {"observation": observation, "safety": True, "jit": jit,
                 "mixed_precision": mixed, "xla_cpu_convolutions": True}  # fmt: skip
    config = build_config(LambdaAgent.Config, preset_names(LambdaAgent), FLAGS.config, overrides)
    observation_space, action_space = spaces_
    agent = LambdaAgent(observation_space, action_space, config, seed=0)
    rng = np.random.default_rng(0)
    steps = 2 * config.sequence_length
    shape = observation_space.shape

    def sample():
        if observation_space.dtype == np.uint8:
            return rng.integers(0, 255, (1, *shape), dtype=np.uint8)
        return rng.normal(size=(1, *shape)).astype(observation_space.dtype)

    observation_now = sample()
    for t in range(steps):
        following = sample()
        action = rng.uniform(action_space.low, action_space.high, (1, *action_space.shape))
        agent.observe(Transition(observation_now, action.astype(action_space.dtype),
                                 rng.normal(size=1), np.array([float(t % 5 == 0)]), following,
                                 np.array([False]), np.array([t == steps - 1])))  # fmt: skip
        observation_now = following
    return agent


def time_updates(agent, repeats: int) -> dict:
    import tensorflow as tf

    batch = agent._sample_batch()
    seeds = tf.cast(agent.random.make_seeds(2), tf.int32)
    started = time.perf_counter()
    _, start = agent._model_step(batch, seeds[:, 0])
    agent._behavior_step(start, seeds[:, 1])["behavior/actor_loss"].numpy()
    first = time.perf_counter() - started
    model, behavior = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        metrics, start = agent._model_step(batch, seeds[:, 0])
        metrics["model/loss"].numpy()
        middle = time.perf_counter()
        agent._behavior_step(start, seeds[:, 1])["behavior/actor_loss"].numpy()
        model.append(middle - started)
        behavior.append(time.perf_counter() - middle)
    return {"first": first, "model": model, "behavior": behavior}


def env_speed(observation: str) -> float:
    from saferl_tf import envs

    env = envs.make(FLAGS.env, observation=observation, action_repeat=1, seed=0)
    env.reset()
    started, done_steps = time.perf_counter(), 0
    while done_steps < FLAGS.env_steps:
        _, _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        done_steps += 1
        if terminated or truncated:
            env.reset()
    env.close()
    return done_steps / (time.perf_counter() - started)


def main(argv):
    del argv
    import tensorflow as tf  # noqa: F401  (before MuJoCo's EGL context)

    from saferl_tf import envs

    rows = []
    for observation in FLAGS.observations:
        env = envs.make(FLAGS.env, observation=observation, seed=0)
        spaces_ = (env.observation_space, env.action_space)
        env.close()
        speed = env_speed(observation)
        results = {}
        for jit in (True, False):  # One agent at a time: a full-size one takes ~10 GB on CPU.
            agent = build(observation, jit, spaces_)
            config = agent.config
            results[jit] = time_updates(agent, FLAGS.repeats)
            del agent
            gc.collect()
        for jit in (True, False):
            model = statistics.median(results[jit]["model"])
            behavior = statistics.median(results[jit]["behavior"])
            ratio = config.train_steps / config.train_every
            loop = 1.0 / (1.0 / speed + ratio * (model + behavior))
            rows.append((observation, "XLA" if jit else "graph", model, behavior,
                         results[jit]["first"], speed, loop))  # fmt: skip
            print(rows[-1], flush=True)
    print("\n| observation | mode | model update s | actor-critic update s | first call s "
          "(trace + compile) | env steps/s alone | implied loop env steps/s |")  # fmt: skip
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for observation, mode, model, behavior, first, speed, loop in rows:
        print(f"| {observation} | {mode} | {model:.3f} | {behavior:.3f} | {first:.1f} | "
              f"{speed:.0f} | {loop:.2f} |")  # fmt: skip
    print("\nSpeed-up of XLA over graph mode (median update time):")
    for observation in FLAGS.observations:
        xla = next(r for r in rows if r[0] == observation and r[1] == "XLA")
        graph = next(r for r in rows if r[0] == observation and r[1] == "graph")
        print(
            f"  {observation}: model {graph[2] / xla[2]:.2f}x, "
            f"actor-critic {graph[3] / xla[3]:.2f}x"
        )


if __name__ == "__main__":
    app.run(main)
