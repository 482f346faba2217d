"""The published GIBO MuJoCo results (sarmueller/gibo), read without PyTorch,
to compare with ``tools/gibo_mujoco_runs.sh`` (docs/BENCHMARKS.md, issue 17).

The published code saves, per experiment folder
``experiments/rl_experiments/<task>/<method>/``, ``offline_rewards.pt`` (a
torch zip holding a plain pickled dict: run -> the reward of each iterate) and
``calls.npy`` (run -> the objective calls made by each iterate). Both hold only
Python numbers, so a restricted unpickler reads them. Prints, per task and
method, the runs' final iterate rewards (mean ± std, min, max) and the mean
reward at given numbers of evaluations (each run's last iterate at or before
them).

Usage: .venv/bin/python tools/gibo_published.py --gibo=PATH_TO_A_GIBO_CHECKOUT
       [--experiments=swimmer/gibo_10runs,swimmer/rs_10runs,hopper/gibo_10runs,hopper/rs_10runs]
       [--at=500,1000,2000,4000,8000]
"""

from __future__ import annotations

import argparse
import io
import pickle
import sys
import zipfile
from pathlib import Path

import numpy as np


class _PlainUnpickler(pickle.Unpickler):
    """Builds only plain containers and numbers: anything else is refused."""

    def find_class(self, module, name):
        if module == "collections" and name == "OrderedDict":
            from collections import OrderedDict

            return OrderedDict
        raise pickle.UnpicklingError(f"refusing {module}.{name} in a results file")


def read_torch_pickle(path: Path):
    """The object of a torch zip file (``torch.save``) holding plain data."""
    with zipfile.ZipFile(path) as archive:
        name = next(n for n in archive.namelist() if n.endswith("data.pkl"))
        return _PlainUnpickler(io.BytesIO(archive.read(name))).load()


def read_experiment(folder: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """[(calls [T], rewards [T]) per run] of one published experiment folder."""
    rewards = read_torch_pickle(folder / "offline_rewards.pt")
    calls = np.load(folder / "calls.npy", allow_pickle=True).item()
    runs = []
    for key in sorted(rewards):
        reward = np.asarray(rewards[key], np.float64)
        count = np.asarray(calls[key], np.float64)
        if len(reward) == len(count) + 1:  # The first reward is the initial policy's.
            count = np.concatenate([[0.0], count])
        if len(reward) != len(count):
            raise ValueError(f"{folder}: run {key} has {len(reward)} rewards, {len(count)} calls")
        runs.append((count, reward))
    return runs


def reward_at(run: tuple[np.ndarray, np.ndarray], evaluations: float) -> float:
    """The run's last iterate reward at or before ``evaluations`` calls (nan: none yet)."""
    calls, rewards = run
    index = np.searchsorted(calls, evaluations, side="right") - 1
    return float(rewards[index]) if index >= 0 else float("nan")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gibo", required=True, type=Path, help="a checkout of sarmueller/gibo")
    parser.add_argument("--experiments", default="swimmer/gibo_10runs,swimmer/rs_10runs,"
                        "hopper/gibo_10runs,hopper/rs_10runs")  # fmt: skip
    parser.add_argument("--at", default="500,1000,2000,4000,8000")
    args = parser.parse_args(argv)
    at = [float(value) for value in args.at.split(",")]
    root = args.gibo / "experiments" / "rl_experiments"
    experiments = {}
    for experiment in args.experiments.split(","):
        folder = root / experiment
        if not (folder / "offline_rewards.pt").is_file():
            print(f"error: {folder} has no offline_rewards.pt; --gibo must name a checkout of "
                  "sarmueller/gibo with its experiments folder", file=sys.stderr)  # fmt: skip
            return 2
        try:
            experiments[experiment] = read_experiment(folder)
        except (pickle.UnpicklingError, ValueError, KeyError, zipfile.BadZipFile, OSError) as error:
            print(f"error: cannot read {folder} ({error})", file=sys.stderr)
            return 2
    print(f"| experiment | runs | final reward mean ± std | min | max | "
          f"{' | '.join(f'mean at {int(a)}' for a in at)} |")  # fmt: skip
    print("| --- | ---: | ---: | ---: | ---: | " + " | ".join("---:" for _ in at) + " |")
    for experiment, runs in experiments.items():
        finals = np.array([rewards[-1] for _, rewards in runs])
        means = []
        for evaluations in at:
            values = [reward_at(run, evaluations) for run in runs if run[0][-1] >= evaluations]
            means.append(f"{np.nanmean(values):.0f}" if values else "-")
        print(f"| {experiment} | {len(runs)} | {finals.mean():.0f} ± {finals.std():.0f} | "
              f"{finals.min():.0f} | {finals.max():.0f} | {' | '.join(means)} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
