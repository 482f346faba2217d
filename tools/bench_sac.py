"""SAC update throughput and VaGraM model-loss step time, XLA against graph mode.

    .venv/bin/python tools/bench_sac.py [--hidden_units=1024] [--observation_size=16]
        [--repeats=30] [--model_units=200] [--model_layers=4] [--gradient_rows=50000]

In one process, side by side: (1) SAC updates per second (``SACLearner.train``,
batch 256, twin critics and a cost critic with ``--safety``) compiled with XLA
and in graph mode; (2) one model training step of a 7-member deterministic
ensemble (batch 1024 per member) with the squared error and with the bounded
VaGraM loss, each with XLA and in graph mode; (3) what VaGraM adds once per
fit: the value gradients of ``--gradient_rows`` next states through the 4
value functions (``ValueGradientCache``, as the agent computes them). Medians
of ``--repeats`` timed calls after one warm-up call (which compiles; 3 calls
for (3)). Record the output in
docs/BENCHMARKS.md with the command.
"""

from __future__ import annotations

import time

import numpy as np
import tensorflow as tf
from absl import app, flags

from saferl_tf.models.ensemble import GaussianEnsemble
from saferl_tf.models.vagram import ValueGradientCache, vagram_member_loss
from saferl_tf.rl.lagrangian import make_penalty
from saferl_tf.rl.sac import SACLearner

FLAGS = flags.FLAGS
flags.DEFINE_integer("hidden_units", 1024, "SAC networks' width (the seed's Hopper: 1024).")
flags.DEFINE_integer("observation_size", 16, "Observation size (Hopper 11 + 5 distractors).")
flags.DEFINE_integer("action_size", 3, "Action size (Hopper: 3).")
flags.DEFINE_integer("repeats", 30, "Timed calls per row.")
flags.DEFINE_integer("model_units", 200, "Model width.")
flags.DEFINE_integer("model_layers", 4, "Model hidden layers.")
flags.DEFINE_bool("safety", False, "Add the cost critic and the penalty.")
flags.DEFINE_integer("gradient_rows", 50_000, "Next states whose value gradients a fit needs.")


def _median_seconds(function, repeats: int) -> float:
    function()  # Compiles.
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def bench_sac() -> dict:
    rng = np.random.default_rng(0)
    size, actions = FLAGS.observation_size, FLAGS.action_size
    batch = {
        "observation": tf.constant(rng.normal(size=(256, size)), tf.float32),
        "action": tf.constant(rng.uniform(-1, 1, (256, actions)), tf.float32),
        "reward": tf.constant(rng.normal(size=256), tf.float32),
        "cost": tf.constant(rng.uniform(size=256), tf.float32),
        "next_observation": tf.constant(rng.normal(size=(256, size)), tf.float32),
        "terminated": tf.zeros(256),
    }
    results = {}
    for jit in (True, False):
        penalty = make_penalty("augmented_lagrangian") if FLAGS.safety else None
        learner = SACLearner(size, actions, hidden_units=FLAGS.hidden_units, penalty=penalty)
        step = tf.function(learner.train, jit_compile=jit)

        def call(step=step):
            step(batch, tf.constant([1, 2]))["sac/critic_loss"].numpy()

        results["XLA" if jit else "graph"] = _median_seconds(call, FLAGS.repeats)
    return results


def bench_model() -> dict:
    rng = np.random.default_rng(1)
    size, actions = FLAGS.observation_size, FLAGS.action_size
    members, batch = 7, 1024
    inputs = rng.normal(size=(members, batch, size + actions)).astype(np.float32)
    targets = rng.normal(size=(members, batch, size + 1)).astype(np.float32)
    gradients = rng.normal(size=(members, batch, 4, size)).astype(np.float32)
    results = {}
    for jit in (True, False):
        ensemble = GaussianEnsemble(size + actions, size + 1, members=members, elites=5,
                                    hidden_units=FLAGS.model_units,
                                    hidden_layers=FLAGS.model_layers, probabilistic=False,
                                    jit=jit)  # fmt: skip
        custom = ensemble._custom_steps(lambda p, t, g: vagram_member_loss(p, t, g))

        def mse(ensemble=ensemble):
            ensemble._train_step(inputs, targets).numpy()

        def vagram(custom=custom):
            custom.train(inputs, targets, gradients).numpy()

        mode = "XLA" if jit else "graph"
        results[f"squared error, {mode}"] = _median_seconds(mse, FLAGS.repeats)
        results[f"VaGraM, {mode}"] = _median_seconds(vagram, FLAGS.repeats)
    return results


def bench_value_gradients() -> float:
    """Seconds to compute the value gradients of ``--gradient_rows`` states
    afresh (a new version each call, as after the critics change)."""
    rng = np.random.default_rng(2)
    learner = SACLearner(FLAGS.observation_size, FLAGS.action_size,
                         hidden_units=FLAGS.hidden_units)  # fmt: skip
    states = rng.normal(size=(FLAGS.gradient_rows, FLAGS.observation_size)).astype(np.float32)
    cache, versions = ValueGradientCache(), iter(range(1_000_000))
    return _median_seconds(lambda: cache.get(next(versions), states, learner.value_functions()), 3)


def main(argv) -> None:
    del argv
    sac = bench_sac()
    print(
        f"\nSAC update (batch 256, {FLAGS.hidden_units} x 2, observation {FLAGS.observation_size}"
        f"{', with cost critic' if FLAGS.safety else ''}): median s per update\n"
    )
    print("| mode | s per update | updates/s |\n| --- | ---: | ---: |")
    for mode, seconds in sac.items():
        print(f"| {mode} | {seconds:.4f} | {1 / seconds:.1f} |")
    print(f"\ngraph / XLA: {sac['graph'] / sac['XLA']:.2f}")
    model = bench_model()
    print(
        f"\nModel step (7 members x 1024, {FLAGS.model_layers} x {FLAGS.model_units}): "
        "median s per step\n"
    )
    print("| loss, mode | s per step |\n| --- | ---: |")
    for name, seconds in model.items():
        print(f"| {name} | {seconds:.4f} |")
    seconds = bench_value_gradients()
    print(
        f"\nValue gradients of {FLAGS.gradient_rows:,} next states (4 value functions, "
        f"SAC {FLAGS.hidden_units} x 2), once per VaGraM fit: {seconds:.2f} s"
    )


if __name__ == "__main__":
    app.run(main)
