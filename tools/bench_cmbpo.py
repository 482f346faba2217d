"""Wall time of CMBPO's epochs by phase, XLA against graph mode, and CPO's
environment steps per second including its updates.

    .venv/bin/python tools/bench_cmbpo.py [--env=sgym_SafetyHalfCheetahVelocity-v1]
        [--epochs=3] [--exploration_steps=10000] [--real_samples=5000] [--cpo_epochs=3]

Two CMBPOAgents with the same settings, one compiling its policy update and
rollouts with XLA (``jit``) and one in graph mode, see the same real
transitions (the first agent acts; both observe) and run their epochs side by
side in this one process; the table gives each phase's seconds per epoch
(the first epoch, which compiles, apart). Then a model-free CPOAgent runs
``--cpo_epochs`` epochs of its 35,000 real samples on the same task, and its
steps per second count acting, environment and updates. Record the output in
docs/BENCHMARKS.md with the command.
"""

from __future__ import annotations

import time

import numpy as np
from absl import app, flags

from saferl_tf import envs
from saferl_tf.agents import CMBPOAgent, CPOAgent, Transition
from saferl_tf.agents.base import preset_names
from saferl_tf.config import build_config

FLAGS = flags.FLAGS
flags.DEFINE_string("env", "sgym_SafetyHalfCheetahVelocity-v1", "Environment id.")
flags.DEFINE_integer("epochs", 3, "CMBPO epochs after the exploration steps.")
flags.DEFINE_integer("exploration_steps", 10_000, "CMBPO's exploration steps (the seed's 10,000).")
flags.DEFINE_integer("real_samples", 5000, "Real samples per CMBPO epoch (fixed, for timing).")
flags.DEFINE_integer("initial_model_epochs", 50, "Epochs at most of the first model fit.")
flags.DEFINE_integer("cpo_epochs", 3, "CPO epochs (35,000 real samples each).")
flags.DEFINE_string("config", "", "Extra presets for both agents.")

PHASES = ("model_fit", "rollouts", "advantages", "policy_update", "value_fit")


def _step_both(agents, env, observation, steps):
    for _ in range(steps):
        action = agents[0].act(observation[None], explore=True)
        following, reward, cost, terminated, truncated, _ = env.step(action[0])
        transition = Transition(observation[None], action, np.array([reward]), np.array([cost]),
                                following[None], np.array([terminated]),
                                np.array([truncated]))  # fmt: skip
        for agent in agents:
            agent.observe(transition)
        observation = env.reset()[0] if terminated or truncated else following
    return observation


def bench_cmbpo() -> None:
    env = envs.make(FLAGS.env, task_observation=True, seed=0)
    task = envs.task_functions(FLAGS.env)
    agents = []
    for jit in (True, False):
        overrides = {"jit": jit, "exploration_steps": FLAGS.exploration_steps,
                     "initial_real_samples": FLAGS.real_samples,
                     "min_real_samples": FLAGS.real_samples,
                     "initial_model_epochs": FLAGS.initial_model_epochs}  # fmt: skip
        config = build_config(CMBPOAgent.Config, preset_names(CMBPOAgent), FLAGS.config, overrides)
        agents.append(CMBPOAgent(env.observation_space, env.action_space, config, task=task,
                                 seed=0))  # fmt: skip
    observation = env.reset(seed=0)[0]
    observation = _step_both(agents, env, observation, FLAGS.exploration_steps)
    timings = {True: [], False: []}
    for agent in agents:
        started = time.perf_counter()
        metrics = agent.update()
        timings[agent.config.jit].append(
            {
                "model_fit": time.perf_counter() - started,
                "model_epochs": metrics.get("model/epochs", 0),
            }
        )
    for _ in range(FLAGS.epochs):
        observation = _step_both(agents, env, observation, FLAGS.real_samples)
        for agent in agents:
            agent.schedule.epoch_target = FLAGS.real_samples  # Fixed, for equal work.
            started = time.perf_counter()
            metrics = agent.update()
            row = {phase: metrics.get(f"time/{phase}", 0.0) for phase in PHASES}
            row["total"] = time.perf_counter() - started
            row["samples"] = metrics.get("rollout/samples", 0.0)
            timings[agent.config.jit].append(row)
    print(f"\nCMBPO on {FLAGS.env}: the first model fit (at most {FLAGS.initial_model_epochs} "
          f"epochs) after {FLAGS.exploration_steps} steps, then {FLAGS.epochs} epochs of "
          f"{FLAGS.real_samples} real samples; seconds.\n")  # fmt: skip
    print(
        "| mode | first fit (epochs) | epoch | " + " | ".join(PHASES) + " | total | model samples |"
    )
    print("| --- | ---: | ---: | " + " | ".join("---:" for _ in PHASES) + " | ---: | ---: |")
    for jit, rows in timings.items():
        mode = "XLA" if jit else "graph"
        first = rows[0]
        for index, row in enumerate(rows[1:]):
            fit = f"{first['model_fit']:.1f} ({first['model_epochs']:.0f})" if index == 0 else ""
            cells = " | ".join(f"{row[p]:.2f}" for p in PHASES)
            print(f"| {mode} | {fit} | {index} | {cells} | {row['total']:.2f} | "
                  f"{row['samples']:.0f} |")  # fmt: skip
    steady = {jit: np.mean([r["total"] for r in rows[2:]]) if len(rows) > 2 else float("nan")
              for jit, rows in timings.items()}  # fmt: skip
    print(
        f"\nsteady epochs (after the first): XLA {steady[True]:.2f} s, graph "
        f"{steady[False]:.2f} s, ratio graph / XLA {steady[False] / steady[True]:.2f}"
    )


def bench_cpo() -> None:
    env = envs.make(FLAGS.env, seed=1)
    config = build_config(CPOAgent.Config, preset_names(CPOAgent), FLAGS.config, {"jit": True})
    agent = CPOAgent(env.observation_space, env.action_space, config, seed=0)
    observation = env.reset(seed=1)[0]
    total = FLAGS.cpo_epochs * config.batch_size
    started = time.perf_counter()
    update_seconds = 0.0
    for _ in range(total):
        action = agent.act(observation[None], explore=True)
        following, reward, cost, terminated, truncated, _ = env.step(action[0])
        agent.observe(Transition(observation[None], action, np.array([reward]),
                                 np.array([cost]), following[None], np.array([terminated]),
                                 np.array([truncated])))  # fmt: skip
        before = time.perf_counter()
        agent.update()
        update_seconds += time.perf_counter() - before
        observation = env.reset()[0] if terminated or truncated else following
    wall = time.perf_counter() - started
    print(
        f"\nCPO on {FLAGS.env}: {total} steps ({FLAGS.cpo_epochs} updates of "
        f"{config.batch_size}) in {wall:.1f} s: {total / wall:.0f} environment steps/s "
        f"including updates ({update_seconds:.1f} s of updates, the first compiling)."
    )


def main(argv) -> None:
    del argv
    bench_cmbpo()
    if FLAGS.cpo_epochs > 0:
        bench_cpo()


if __name__ == "__main__":
    app.run(main)
