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
With ``--loop_steps=N`` it also runs the real loop on the task (act,
environment step, observe, update on the schedule) for N environment steps
after the warm-up and first training round, and reports the measured
environment steps per second; ``--mixed_precision`` adds bfloat16 rows.
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
flags.DEFINE_bool("mixed_precision", False, "Also time with bfloat16 mixed precision (GPUs).")
flags.DEFINE_integer(
    "loop_steps", 0, "Also measure the whole loop (act, step, observe, update) for N env steps."
)
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


def loop_speed(agent, observation_kind: str) -> float:
    """Environment steps per second of the real loop after the warm-up is filled."""
    import numpy as np

    from saferl_tf import envs
    from saferl_tf.agents import Transition

    config = agent.config
    env = envs.make(FLAGS.env, observation=observation_kind, action_repeat=config.action_repeat,
                    seed=1)  # fmt: skip
    observation, _ = env.reset()
    first = True

    def step():
        nonlocal observation, first
        action = agent.act(observation[None], is_first=np.array([first]))
        following, reward, cost, terminated, truncated, _ = env.step(action[0])
        agent.observe(Transition(observation[None], action, np.array([reward]),
                                 np.array([cost]), following[None], np.array([terminated]),
                                 np.array([truncated])))  # fmt: skip
        agent.update()
        first = terminated or truncated
        observation = env.reset()[0] if first else following

    while agent.num_steps * config.action_repeat < config.warmup_steps + config.train_every:
        step()  # Warm-up, pre-training and the first compiled calls: not timed.
    started, counted = time.perf_counter(), agent.num_steps
    while (agent.num_steps - counted) * config.action_repeat < FLAGS.loop_steps:
        step()
    env.close()
    return (agent.num_steps - counted) * config.action_repeat / (time.perf_counter() - started)


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
        modes = [(jit, mixed) for mixed in (False, True)[: 1 + FLAGS.mixed_precision]
                 for jit in (True, False)]  # fmt: skip
        for jit, mixed in modes:  # One agent at a time: a full-size one takes ~10 GB on CPU.
            agent = build(observation, jit, spaces_, mixed)
            config = agent.config
            results[jit, mixed] = time_updates(agent, FLAGS.repeats)
            if FLAGS.loop_steps:
                results[jit, mixed]["loop"] = loop_speed(agent, observation)
            del agent
            gc.collect()
        for jit, mixed in modes:
            model = statistics.median(results[jit, mixed]["model"])
            behavior = statistics.median(results[jit, mixed]["behavior"])
            ratio = config.train_steps / config.train_every
            loop = 1.0 / (1.0 / speed + ratio * (model + behavior))
            mode = ("XLA" if jit else "graph") + (" bf16" if mixed else "")
            rows.append((observation, mode, model, behavior, results[jit, mixed]["first"], speed,
                         loop, results[jit, mixed].get("loop", float("nan"))))  # fmt: skip
            print(rows[-1], flush=True)
    print("\n| observation | mode | model update s | actor-critic update s | first call s "
          "(trace + compile) | env steps/s alone | implied loop env steps/s | "
          "measured loop env steps/s |")  # fmt: skip
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for observation, mode, model, behavior, first, speed, loop, measured in rows:
        print(f"| {observation} | {mode} | {model:.3f} | {behavior:.3f} | {first:.1f} | "
              f"{speed:.0f} | {loop:.2f} | {measured:.2f} |")  # fmt: skip
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
