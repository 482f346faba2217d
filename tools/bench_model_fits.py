"""How well the planning agents' ensemble fits the pendulum after each refit,
with and without a minimum number of gradient steps per fit (issue 16).

The agent refits its ensemble (warm started) after 100 exploration steps and
after every 200-step episode. With a few hundred transitions an epoch is one
or two gradient steps, and early stopping (patience 5 epochs) can end a fit
after 5 steps. This replays that schedule on transitions of the true
``saferl_ConstrainedPendulum-v0`` (episodes mixing random torques and energy
pumping, so that fast swings are in the data) and reports, after each refit,
the gradient steps taken and the squared error of the predicted angular speed
on 2,000 held-out transitions.

Usage:
  .venv/bin/python tools/bench_model_fits.py [--min_steps=0,500] [--seeds=0,1]
"""

from __future__ import annotations

import numpy as np
from absl import app, flags

from saferl_tf.agents.pessimistic import PlanningAgent
from saferl_tf.envs.pendulum import ConstrainedPendulumEnv
from saferl_tf.models.dynamics import DynamicsEnsemble

flags.DEFINE_list("min_steps", ["0", "500"], "Minimum gradient steps per fit to compare.")
flags.DEFINE_list("seeds", ["0", "1"], "Ensemble seeds.")
SIZES = ["100", "200", "400", "600", "800", "1000", "1400", "2000", "3000"]
flags.DEFINE_list("sizes", SIZES, "Transitions at each refit (the agent's: 100, then every 200).")
FLAGS = flags.FLAGS


def collect(episodes: int, rng: np.random.Generator, steps: int = 200):
    """Transitions (observation, action, next observation) of episodes whose
    torque mixes a random one with energy pumping by a random share."""
    env = ConstrainedPendulumEnv()
    rows = []
    for _ in range(episodes):
        observation, _ = env.reset(seed=int(rng.integers(2**31)))
        share = rng.uniform(0.0, 1.0)
        for _ in range(steps):
            pump = np.sign(observation[2] * observation[0]) if abs(observation[2]) > 1e-3 else 1.0
            action = share * pump + (1.0 - share) * rng.uniform(-1, 1) + 0.3 * rng.normal()
            action = np.clip(action, -1.0, 1.0)
            following, *_ = env.step(np.array([action], np.float32))
            rows.append((observation, [action], following))
            observation = following
    return tuple(np.array(part, np.float32) for part in zip(*rows))


def main(argv):
    del argv
    rng = np.random.default_rng(0)
    held_out = collect(10, rng)
    train = collect(15, rng)
    config = PlanningAgent.Config()
    sizes = [int(size) for size in FLAGS.sizes]
    print("min_steps seed  " + "  ".join(f"{size:>12d}" for size in sizes))
    print("(per refit: gradient steps / squared error of the angular speed, held out)")
    for min_steps in (int(value) for value in FLAGS.min_steps):
        for seed in (int(value) for value in FLAGS.seeds):
            dynamics = DynamicsEnsemble(
                3, 1, learn=(), members=config.members, elites=config.model_elites,
                hidden_units=config.hidden_units, hidden_layers=config.hidden_layers,
                weight_decay=config.weight_decay, learning_rate=config.model_learning_rate,
                batch_size=config.model_batch_size, holdout_ratio=config.holdout_ratio,
                max_epochs=config.model_epochs, patience=config.patience, seed=seed,
            )  # fmt: skip
            cells = []
            for size in sizes:
                report = dynamics.fit(*(part[:size] for part in train), min_steps=min_steps)
                inputs = np.concatenate(held_out[:2], -1)
                mean = dynamics.ensemble.moments(inputs, aleatoric=False).mean.numpy()
                error = np.mean(np.square(held_out[0][:, 2] + mean[:, 2] - held_out[2][:, 2]))
                cells.append(f"{report.steps:>4d} / {error:.4f}")
            print(f"{min_steps:>9d} {seed:>4d}  " + "  ".join(cells), flush=True)


if __name__ == "__main__":
    app.run(main)
