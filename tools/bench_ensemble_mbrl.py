"""The package's ensemble against mbrl-lib's, side by side in one run (issue 16).

At mbrl-lib's MBPO configuration (5 members, 4 x 200 SiLU, 23 inputs, 18
outputs plus log-variances) measures, interleaved over ``--repeats`` rounds
(medians reported):

1. the train step at a batch of 5 x 256 (one batch per member; Adam, the
   Gaussian likelihood): ``GaussianEnsemble``'s compiled step (XLA) against
   mbrl-lib 0.2.0's ``GaussianMLP.update``;
2. TS-1 propagation of ``--particles`` particles (a random member per
   particle, its mean plus its noise): ``GaussianEnsemble.propagate(mode=
   "random")`` compiled, against ``GaussianMLP.sample_1d`` with
   ``propagation_method="random_model"`` under ``torch.no_grad()``;
3. as the ceiling both are held against, a bare batched matrix product
   at the hidden layers' shape ([5, ``--particles`` / 5, 200] x [5, 200, 200],
   ``tf.linalg.matmul`` under XLA and ``torch.bmm``).

The train step and the propagation are also reported as arithmetic rates
(GFLOP/s from the layers' multiply-adds: a forward pass per sample, three for
a train step's forward and backward), so that each side's distance from that
ceiling shows.

Both get the same number of threads (``--threads``). PyTorch and mbrl-lib are
never dependencies of the package: they run in a separate interpreter
(``--torch_python``), for example a scratch virtual environment::

    python3 -m venv /tmp/torch && /tmp/torch/bin/pip install torch==2.5.1 mbrl==0.2.0 ...
    .venv/bin/python tools/bench_ensemble_mbrl.py --torch_python=/tmp/torch/bin/python
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app, flags  # noqa: E402

flags.DEFINE_string("torch_python", None, "Interpreter with torch and mbrl-lib 0.2.0 installed.")
flags.DEFINE_integer("repeats", 5, "Interleaved measurement rounds.")
flags.DEFINE_integer("steps", 50, "Timed train steps or propagations per round.")
flags.DEFINE_integer("particles", 10_000, "Particles per propagation.")
flags.DEFINE_integer("threads", 2, "Threads for both frameworks.")
FLAGS = flags.FLAGS

MEMBERS, LAYERS, UNITS, INPUTS, OUTPUTS, BATCH = 5, 4, 200, 23, 18, 256

TORCH_WORKER = r"""
import json, sys, time
import torch
from mbrl.models import GaussianMLP
torch.set_num_threads(int(sys.argv[1]))
members, layers, units, inputs, outputs, batch, particles, steps = map(int, sys.argv[2:10])
torch.manual_seed(0)
model = GaussianMLP(inputs, outputs, "cpu", num_layers=layers, ensemble_size=members,
                    hid_size=units, propagation_method="random_model",
                    activation_fn_cfg={"_target_": "torch.nn.SiLU"})
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=5e-5)
x, y = torch.randn(members, batch, inputs), torch.randn(members, batch, outputs)
states = torch.randn(particles, inputs)
generator = torch.Generator().manual_seed(0)
state = {"propagation_indices": None}
for _ in range(3):  # Warm-up.
    model.update(x, optimizer, target=y)
    with torch.no_grad():
        model.sample_1d(states, state, deterministic=False, rng=generator)
left = torch.randn(members, particles // members, units)
right = torch.randn(members, units, units)
for line in sys.stdin:
    if line.strip() == "matmul":
        started = time.perf_counter()
        with torch.no_grad():
            for _ in range(steps):
                product = torch.bmm(left, right)
    elif line.strip() == "train":
        started = time.perf_counter()
        for _ in range(steps):
            model.update(x, optimizer, target=y)
    else:
        started = time.perf_counter()
        with torch.no_grad():
            for _ in range(steps):
                model.sample_1d(states, state, deterministic=False, rng=generator)
    print(json.dumps(time.perf_counter() - started), flush=True)
"""


def tensorflow_timers():
    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(FLAGS.threads)
    tf.config.threading.set_inter_op_parallelism_threads(FLAGS.threads)
    from saferl_tf.models.ensemble import GaussianEnsemble

    ensemble = GaussianEnsemble(INPUTS, OUTPUTS, members=MEMBERS, hidden_units=UNITS,
                                hidden_layers=LAYERS, activation="swish", seed=0)  # fmt: skip
    rng = np.random.default_rng(0)
    x = rng.normal(size=(MEMBERS, BATCH, INPUTS)).astype(np.float32)
    y = rng.normal(size=(MEMBERS, BATCH, OUTPUTS)).astype(np.float32)
    # Normalization fitted to the same distribution: the step sees normalized data.
    ensemble.fit_normalization(x.reshape(-1, INPUTS), y.reshape(-1, OUTPUTS))
    # Fixed batches as tensors, as mbrl-lib's side gets them.
    batch_x, batch_y = tf.constant(x), tf.constant(y)
    states = tf.constant(rng.normal(size=(FLAGS.particles, INPUTS)).astype(np.float32))
    propagate = tf.function(lambda s, seed: ensemble.propagate(s, "random", seed, True),
                            jit_compile=True)  # fmt: skip
    left = tf.constant(rng.normal(size=(MEMBERS, FLAGS.particles // MEMBERS, UNITS)), tf.float32)
    right = tf.constant(rng.normal(size=(MEMBERS, UNITS, UNITS)), tf.float32)
    product = tf.function(tf.linalg.matmul, jit_compile=True)
    for _ in range(3):  # Warm-up and compilation.
        ensemble._train_step(batch_x, batch_y).numpy()
        propagate(states, tf.constant([0, 0])).numpy()
        product(left, right).numpy()

    def train() -> float:
        started = time.perf_counter()
        for _ in range(FLAGS.steps):
            loss = ensemble._train_step(batch_x, batch_y)
        loss.numpy()
        return time.perf_counter() - started

    def propagation() -> float:
        started = time.perf_counter()
        for i in range(FLAGS.steps):
            out = propagate(states, tf.constant([i, 1]))
        out.numpy()
        return time.perf_counter() - started

    def matmul() -> float:
        started = time.perf_counter()
        for _ in range(FLAGS.steps):
            out = product(left, right)
        out.numpy()
        return time.perf_counter() - started

    return train, propagation, matmul


def forward_flops() -> int:
    """Multiply-adds x 2 of one member's forward pass for one sample (the
    mean and log-variance heads together)."""
    widths = [INPUTS] + [UNITS] * LAYERS + [2 * OUTPUTS]
    return 2 * sum(a * b for a, b in zip(widths[:-1], widths[1:]))


def main(argv):
    del argv
    if not FLAGS.torch_python:
        raise app.UsageError("--torch_python is required (an interpreter with torch and mbrl-lib)")
    worker = subprocess.Popen(
        [FLAGS.torch_python, "-c", TORCH_WORKER, str(FLAGS.threads),
         *map(str, (MEMBERS, LAYERS, UNITS, INPUTS, OUTPUTS, BATCH, FLAGS.particles,
                    FLAGS.steps))],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip

    def torch_time(what: str) -> float:
        worker.stdin.write(what + "\n")
        worker.stdin.flush()
        return json.loads(worker.stdout.readline())

    train, propagation, matmul = tensorflow_timers()
    keys = ("tf train", "torch train", "tf propagate", "torch propagate", "tf matmul",
            "torch matmul")  # fmt: skip
    times = {key: [] for key in keys}
    for round_ in range(FLAGS.repeats):
        times["tf train"].append(train())
        times["torch train"].append(torch_time("train"))
        times["tf propagate"].append(propagation())
        times["torch propagate"].append(torch_time("propagate"))
        times["tf matmul"].append(matmul())
        times["torch matmul"].append(torch_time("matmul"))
        print(f"round {round_ + 1}/{FLAGS.repeats} done", file=sys.stderr, flush=True)
    worker.stdin.close()
    worker.wait()
    steps = FLAGS.steps
    train_rate = {k: MEMBERS * BATCH * steps / statistics.median(v)
                  for k, v in times.items() if "train" in k}  # fmt: skip
    prop_rate = {k: FLAGS.particles * steps / statistics.median(v)
                 for k, v in times.items() if "propagate" in k}  # fmt: skip
    rows = MEMBERS * (FLAGS.particles // MEMBERS)
    matmul_rate = {k: 2 * rows * UNITS * UNITS * steps / statistics.median(v) / 1e9
                   for k, v in times.items() if "matmul" in k}  # fmt: skip
    gflops = {k: v * 3 * forward_flops() / 1e9 for k, v in train_rate.items()}
    gflops |= {k: v * forward_flops() / 1e9 for k, v in prop_rate.items()}
    print(
        f"\n{MEMBERS} members, {LAYERS} x {UNITS} SiLU, {INPUTS} -> {OUTPUTS} (+ log-variances), "
        f"{FLAGS.threads} threads, medians of {FLAGS.repeats} rounds of {steps} calls"
    )
    print("\n| | saferl_tf (XLA) | mbrl-lib 0.2.0 (PyTorch) | saferl_tf / mbrl-lib |")
    print("| --- | ---: | ---: | ---: |")
    print(
        f"| train step, samples/s (batch {MEMBERS} x {BATCH}) | {train_rate['tf train']:,.0f} | "
        f"{train_rate['torch train']:,.0f} | "
        f"{train_rate['tf train'] / train_rate['torch train']:.2f}x |"
    )
    print(
        f"| TS-1 propagation, particles/s ({FLAGS.particles:,}) | "
        f"{prop_rate['tf propagate']:,.0f} | {prop_rate['torch propagate']:,.0f} | "
        f"{prop_rate['tf propagate'] / prop_rate['torch propagate']:.2f}x |"
    )
    print(
        f"| bare matmul [{MEMBERS}, {rows // MEMBERS}, {UNITS}] x [{MEMBERS}, {UNITS}, {UNITS}], "
        f"GFLOP/s | {matmul_rate['tf matmul']:.1f} | {matmul_rate['torch matmul']:.1f} | "
        f"{matmul_rate['tf matmul'] / matmul_rate['torch matmul']:.2f}x |"
    )
    print("\nArithmetic rate, GFLOP/s (share of the same side's bare matmul):\n")
    print("| | saferl_tf (XLA) | mbrl-lib 0.2.0 (PyTorch) |")
    print("| --- | ---: | ---: |")
    for what in ("train", "propagate"):
        cells = [f"{gflops[f'{side} {what}']:.1f} "
                 f"({gflops[f'{side} {what}'] / matmul_rate[f'{side} matmul']:.0%})"
                 for side in ("tf", "torch")]  # fmt: skip
        label = "train step (3 forward passes per sample)" if what == "train" else "propagation"
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    app.run(main)
