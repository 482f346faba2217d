"""A SAC-Lagrangian run's cost critic against the cost its data actually incurred.

    .venv/bin/python tools/cost_critic_check.py runs/hopper/safety/sac/<env>/0 ...

For each run folder (with its checkpoints/ and replay/): restores the newest
checkpoint and, over the last ``--episodes`` episodes of the replay, compares
the discounted cost-to-go that followed each logged (s, a), summed with the
agent's ``cost_discount`` to the episode's end (Monte Carlo), with the cost
critic's Q_c(s, a) at the same pairs and with Q_c(s, a ~ pi). Those episodes
were collected by nearly the final policy, so a critic that has learned its
policy's cost reads about the Monte Carlo mean; the constraint of the
``cost_critic`` multiplier signal is that critic's mean over SAC batches. An
episode cut by a time limit ends its sums early (an underestimate of the
Monte Carlo column there). Prints one Markdown row per run.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import tensorflow as tf
from absl import app, flags

from saferl_tf.cli import fail
from saferl_tf.data.replay import Chunk
from saferl_tf.errors import UserError
from saferl_tf.training.run_evaluation import EvalSettings, Evaluation

flags.DEFINE_integer("episodes", 50, "The replay's last episodes to compare on.")
FLAGS = flags.FLAGS


def episodes(replay_dir: Path) -> list[Chunk]:
    """The replay's chunks joined into episodes (a chunk that does not start an
    episode continues the one before: one environment), oldest first."""
    joined: list[Chunk] = []
    for path in sorted(replay_dir.glob("*.npz")):
        chunk = Chunk.load(path)
        if joined and not chunk.first:
            last = joined[-1]
            joined[-1] = Chunk(
                np.concatenate([last.observation[:-1], chunk.observation]),
                *(np.concatenate([getattr(last, k), getattr(chunk, k)])
                  for k in ("action", "reward", "cost", "terminated")),
                last.first,
            )  # fmt: skip
        else:
            joined.append(chunk)
    return joined


def cost_to_go(costs: np.ndarray, discount: float) -> np.ndarray:
    """[T] sum_k discount^k c_{t+k} to the end of the episode, in float64."""
    out, total = np.zeros(len(costs)), 0.0
    for t in range(len(costs) - 1, -1, -1):
        total = float(costs[t]) + discount * total
        out[t] = total
    return out


def check(run_dir: Path, count: int) -> str:
    evaluation = Evaluation(EvalSettings(run_dir=str(run_dir)))
    env = evaluation.make_env()
    try:
        agent, _, step = evaluation.restore(env.observation_space, env.action_space)
    finally:
        env.close()
    learner = getattr(agent, "learner", None)
    if learner is None or getattr(learner, "cost_critic", None) is None:
        raise UserError(f"{run_dir} has no cost critic (a sac, mbpo or vagram run with --safety)")
    chosen = episodes(run_dir / "replay")[-count:]
    if not chosen:
        raise UserError(f"{run_dir / 'replay'} holds no episodes")
    discount = agent.config.cost_discount
    observation = np.concatenate([c.observation[:-1] for c in chosen]).astype(np.float32)
    action = agent._from_space(np.concatenate([c.action for c in chosen]).astype(np.float32))
    returns = np.concatenate([cost_to_go(c.cost, discount) for c in chosen])
    logged = learner._q(learner.cost_critic, observation, action).numpy()
    sampled, _ = learner.sample(tf.constant(observation), tf.constant([0, 1]))
    policy = learner._q(learner.cost_critic, observation, sampled).numpy()
    rate = np.concatenate([c.cost for c in chosen]).mean()
    return (f"| {run_dir} | {step} | {len(chosen)} ({len(returns)} steps) | {rate:.3f} | "
            f"{returns.mean():.2f} | {logged.mean():.2f} | {policy.mean():.2f} | "
            f"{np.corrcoef(returns, logged)[0, 1]:.2f} |")  # fmt: skip


def main(argv):
    runs = [Path(arg) for arg in argv[1:]]
    if not runs:
        fail("give one or more run folders (results/<agent>/<env>/<seed>)")
    if FLAGS.episodes < 1:
        fail(f"--episodes must be a positive integer, got {FLAGS.episodes}")
    print("| run | step | episodes | cost per step | Monte Carlo cost-to-go | Q_c(s, a) "
          "| Q_c(s, a ~ pi) | correlation |")  # fmt: skip
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for run in runs:
        try:
            print(check(run, FLAGS.episodes), flush=True)
        except UserError as error:
            fail(str(error))


if __name__ == "__main__":
    sys.exit(app.run(main))
