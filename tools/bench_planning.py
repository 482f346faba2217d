"""Ensemble training and planning speed, XLA against graph mode, in one run.

On ``--env``'s spaces (default ``saferl_ConstrainedPendulum-v0``; ensemble
fitted to random transitions of the real task) measures, for ``jit=True`` and ``jit=False``
interleaved over ``--repeats`` rounds (medians reported):

1. ensemble training: transitions per second of the compiled train step at
   batch 256 per member (the agents' ensemble, and MBPO's 7-member 200x4);
2. model rollouts: particle-steps per second of ``ModelEnv.rollout_actions``
   (``--particles`` particles, horizon 20, TS-∞);
3. planning: seconds per control step of each planning agent (``NAME`` at
   its defaults, ``NAME:PRESET`` with a preset of saferl_tf/configs/cem.yaml
   (``NAME:A+B`` stacks two),
   for example ``pessimistic:seed``), and the implied seconds of planning per
   ``--episode_steps``-step episode.

Usage::

    .venv/bin/python tools/bench_planning.py [--repeats=3] [--agents=cem,pessimistic]
    .venv/bin/python tools/bench_planning.py --agents=pessimistic:reduced,pessimistic:seed \
        --modes=xla --sections=planning --plan_steps=2
    .venv/bin/python tools/bench_planning.py --env=sgym_SafetyPointGoal1-v0 \
        --agents=cem:safety_gym,pessimistic:safety_gym --modes=xla --sections=planning \
        --episode_steps=1000
"""

from __future__ import annotations

import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app, flags  # noqa: E402

flags.DEFINE_integer("repeats", 3, "Interleaved measurement rounds.")
flags.DEFINE_integer("train_steps", 50, "Train steps per ensemble measurement.")
flags.DEFINE_integer("particles", 5000, "Particles per rollout measurement.")
flags.DEFINE_integer("plan_steps", 5, "Control steps per planning measurement.")
flags.DEFINE_list(
    "agents",
    ["cem", "cem_cost", "pessimistic_fixed", "pessimistic", "optimistic_pessimistic"],
    "Planning agents to time: NAME or NAME:PRESET.",
)
flags.DEFINE_list("modes", ["xla", "graph"], "Compilation modes: xla, graph.")
flags.DEFINE_list("sections", ["training", "rollouts", "planning"],
                  "What to measure: training, rollouts, planning, envs.")  # fmt: skip
flags.DEFINE_string("env", "saferl_ConstrainedPendulum-v0", "Environment id.")
flags.DEFINE_integer("episode_steps", 200, "Control steps per episode, for the planning column.")
flags.DEFINE_integer("num_envs", 4, "envs: environments planned in one call against one by one.")
FLAGS = flags.FLAGS
ENSEMBLES = {
    "agents' 5x32x3": dict(members=5, hidden_units=32, hidden_layers=3),
    "MBPO 7x200x4": dict(members=7, elites=5, hidden_units=200, hidden_layers=4),
}


def random_transitions(steps: int = 1000):
    import numpy as np

    from saferl_tf import envs

    env = envs.make(FLAGS.env, seed=0)
    observation, _ = env.reset()
    data = {"observation": [], "action": [], "next_observation": [], "reward": [], "cost": []}
    for _ in range(steps):
        action = env.action_space.sample()
        following, reward, cost, terminated, truncated, _ = env.step(action)
        for key, value in zip(data, (observation, action, following, reward, cost)):
            data[key].append(value)
        observation = env.reset()[0] if terminated or truncated else following
    return {key: np.asarray(value, np.float32) for key, value in data.items()}


def sizes(data) -> tuple[int, int]:
    """Observation and action sizes of the transitions."""
    return data["observation"].shape[-1], data["action"].shape[-1]


def time_training(data, jit: bool, kwargs: dict) -> float:
    import numpy as np

    from saferl_tf.models.dynamics import DynamicsEnsemble

    dynamics = DynamicsEnsemble(*sizes(data), jit=jit, seed=0, **kwargs)
    ensemble = dynamics.ensemble
    inputs = np.c_[data["observation"], data["action"]]
    targets = data["next_observation"] - data["observation"]
    ensemble.fit_normalization(inputs, targets)
    rng = np.random.default_rng(0)
    index = rng.integers(0, len(inputs), (ensemble.members, 256))
    ensemble._train_step(inputs[index], targets[index]).numpy()  # Trace and compile.
    started = time.perf_counter()
    for _ in range(FLAGS.train_steps):
        index = rng.integers(0, len(inputs), (ensemble.members, 256))
        loss = ensemble._train_step(inputs[index], targets[index])
    loss.numpy()
    return 256 * FLAGS.train_steps / (time.perf_counter() - started)


def time_rollouts(data, jit: bool) -> float:
    import numpy as np
    import tensorflow as tf

    from saferl_tf import envs
    from saferl_tf.models.dynamics import DynamicsEnsemble
    from saferl_tf.models.model_env import ModelEnv

    dynamics = DynamicsEnsemble(*sizes(data), seed=0, jit=jit, **ENSEMBLES["agents' 5x32x3"])
    dynamics.fit(data["observation"], data["action"], data["next_observation"], max_epochs=2)
    model_env = ModelEnv(dynamics, task=envs.task_functions(FLAGS.env), jit=jit)
    start = np.tile(data["observation"][:1], (FLAGS.particles, 1))
    actions = (
        np.random.default_rng(0)
        .uniform(-1, 1, (FLAGS.particles, 20, sizes(data)[1]))
        .astype(np.float32)
    )
    model_env.compiled_rollout_actions(start, actions, tf.constant([0, 0]))
    started = time.perf_counter()
    for i in range(3):
        rollout = model_env.compiled_rollout_actions(start, actions, tf.constant([i, 1]))
    rollout.rewards.numpy()
    return 3 * FLAGS.particles * 20 / (time.perf_counter() - started)


def fit_agent_model(agent, data) -> None:
    """A few epochs on the random transitions, with whatever the model learns
    (reward and cost where the task has no known functions)."""
    learned = {f"{name}s": data[name] for name in agent.dynamics.learned if name in data}
    agent.dynamics.fit(data["observation"], data["action"], data["next_observation"],
                       max_epochs=5, **learned)  # fmt: skip


def time_planning(label: str, data, jit: bool) -> tuple[float, float]:
    from saferl_tf import envs
    from saferl_tf.agents import make_agent
    from saferl_tf.agents.base import agent_class, preset_names
    from saferl_tf.config import build_config

    name, _, preset = label.partition(":")
    preset = preset.replace("+", ",")  # NAME:A+B stacks presets A and B.
    cls = agent_class(name)
    config = build_config(cls.Config, preset_names(cls), preset, {"safety": True, "jit": jit})
    env = envs.make(FLAGS.env)
    agent = make_agent(name, env.observation_space, env.action_space, config,
                       task=envs.task_functions(FLAGS.env))  # fmt: skip
    fit_agent_model(agent, data)
    observation = data["observation"][0]
    started = time.perf_counter()
    _, warm = agent.plan(observation)
    first = time.perf_counter() - started
    times = []
    for _ in range(FLAGS.plan_steps):
        started = time.perf_counter()
        _, warm = agent.plan(observation, warm)
        times.append(time.perf_counter() - started)
    return statistics.median(times), first


def time_env_batching(label: str, data, jit: bool) -> tuple[float, float]:
    """Seconds per control step of ``num_envs`` environments: planned one by
    one (``plan`` each) and in one call (``plan_batch``); medians of plan_steps."""
    from saferl_tf import envs
    from saferl_tf.agents import make_agent
    from saferl_tf.agents.base import agent_class, preset_names
    from saferl_tf.config import build_config

    name, _, preset = label.partition(":")
    cls = agent_class(name)
    config = build_config(cls.Config, preset_names(cls), preset.replace("+", ","),
                          {"safety": True, "jit": jit})  # fmt: skip
    env = envs.make(FLAGS.env)
    agent = make_agent(name, env.observation_space, env.action_space, config,
                       task=envs.task_functions(FLAGS.env))  # fmt: skip
    fit_agent_model(agent, data)
    observations = data["observation"][: FLAGS.num_envs]
    singles = [agent.plan(o)[1] for o in observations]  # Compiles both shapes first.
    _, together = agent.plan_batch(observations, [None] * len(observations))
    loop, batch = [], []
    for _ in range(FLAGS.plan_steps):
        started = time.perf_counter()
        singles = [agent.plan(o, state)[1] for o, state in zip(observations, singles)]
        loop.append(time.perf_counter() - started)
        started = time.perf_counter()
        _, together = agent.plan_batch(observations, together)
        batch.append(time.perf_counter() - started)
    return statistics.median(loop), statistics.median(batch)


def main(argv):
    del argv
    data = random_transitions()
    modes = tuple(mode == "xla" for mode in FLAGS.modes)
    training = {(label, jit): [] for label in ENSEMBLES for jit in modes}
    rollouts = {jit: [] for jit in modes}
    planning = {(name, jit): [] for name in FLAGS.agents for jit in modes}
    compile_time = {}
    batching = {(name, jit): [] for name in FLAGS.agents for jit in modes}
    for round_ in range(FLAGS.repeats):
        for jit in modes:
            if "envs" in FLAGS.sections:
                for name in FLAGS.agents:
                    batching[name, jit].append(time_env_batching(name, data, jit))
            if "training" in FLAGS.sections:
                for label, kwargs in ENSEMBLES.items():
                    training[label, jit].append(time_training(data, jit, kwargs))
            if "rollouts" in FLAGS.sections:
                rollouts[jit].append(time_rollouts(data, jit))
            if "planning" not in FLAGS.sections:
                continue
            for name in FLAGS.agents:
                seconds, first = time_planning(name, data, jit)
                planning[name, jit].append(seconds)
                compile_time[name, jit] = first
        print(f"round {round_ + 1}/{FLAGS.repeats} done", flush=True)

    def mode(jit):
        return "XLA" if jit else "graph"

    if "envs" in FLAGS.sections:
        print(f"\n| planner | mode | s per control step of {FLAGS.num_envs} environments: "
              "one by one | in one call | one by one / one call |")  # fmt: skip
        print("| --- | --- | ---: | ---: | ---: |")
        for (name, jit), values in batching.items():
            loop = statistics.median(v[0] for v in values)
            batch = statistics.median(v[1] for v in values)
            print(f"| {name} | {mode(jit)} | {loop:.3f} | {batch:.3f} | {loop / batch:.2f} |")

    if "training" in FLAGS.sections:
        print("\n| ensemble | mode | train transitions/s (batch 256 per member) |")
        print("| --- | --- | ---: |")
        for (label, jit), values in training.items():
            print(f"| {label} | {mode(jit)} | {statistics.median(values):,.0f} |")
        if len(modes) == 2:
            for label in ENSEMBLES:
                ratio = (statistics.median(training[label, True])
                         / statistics.median(training[label, False]))  # fmt: skip
                print(f"XLA / graph, {label}: {ratio:.2f}x")
    if "rollouts" in FLAGS.sections:
        print(f"\n| mode | model rollout particle-steps/s ({FLAGS.particles} particles, H 20) |")
        print("| --- | ---: |")
        for jit in modes:
            print(f"| {mode(jit)} | {statistics.median(rollouts[jit]):,.0f} |")
        if len(modes) == 2:
            ratio = statistics.median(rollouts[True]) / statistics.median(rollouts[False])
            print(f"XLA / graph: {ratio:.2f}x")
    if "planning" in FLAGS.sections:
        print("\n| agent | mode | s per control step | "
              f"s per {FLAGS.episode_steps}-step episode | first call s |")  # fmt: skip
        print("| --- | --- | ---: | ---: | ---: |")
        for (name, jit), values in planning.items():
            seconds = statistics.median(values)
            print(f"| {name} | {mode(jit)} | {seconds:.3f} | {FLAGS.episode_steps * seconds:.1f} | "
                  f"{compile_time[name, jit]:.1f} |")  # fmt: skip
        if len(modes) == 2:
            for name in FLAGS.agents:
                ratio = (statistics.median(planning[name, False])
                         / statistics.median(planning[name, True]))  # fmt: skip
                print(f"graph / XLA time, {name}: {ratio:.2f}x")
        first = FLAGS.agents[0]
        for name in FLAGS.agents[1:]:
            for jit in modes:
                ratio = statistics.median(planning[name, jit]) / statistics.median(
                    planning[first, jit]
                )
                print(f"{name} / {first} time per control step ({mode(jit)}): {ratio:.1f}x")


if __name__ == "__main__":
    app.run(main)
