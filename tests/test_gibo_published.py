"""tools/gibo_published.py: the published GIBO results read without PyTorch."""

from __future__ import annotations

import pickle
import subprocess
import zipfile

import numpy as np
from conftest import ROOT

TOOL = str(ROOT / "tools" / "gibo_published.py")


def _experiment(folder, rewards: dict, calls: dict, payload=None):
    """Writes the two files as the published code does (torch.save's zip layout)."""
    folder.mkdir(parents=True)
    with zipfile.ZipFile(folder / "offline_rewards.pt", "w") as archive:
        archive.writestr("archive/data.pkl", payload or pickle.dumps(rewards, protocol=2))
        archive.writestr("archive/version", "3\n")
    np.save(folder / "calls.npy", np.array(calls, dtype=object), allow_pickle=True)


def test_final_rewards_and_rewards_at_given_evaluations(python, tmp_path):
    root = tmp_path / "gibo" / "experiments" / "rl_experiments"
    # Run 0: initial policy 10, iterates after 17 and 34 calls; run 1 likewise.
    _experiment(root / "swimmer" / "gibo_10runs", {0: [10.0, 100.0, 300.0], 1: [10.0, 50.0, 200.0]},
                {0: [17, 34], 1: [17, 34]})  # fmt: skip
    result = subprocess.run([python, TOOL, f"--gibo={tmp_path / 'gibo'}",
                             "--experiments=swimmer/gibo_10runs", "--at=0,20,34"],
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    row = result.stdout.strip().splitlines()[-1].split("|")
    cells = [cell.strip() for cell in row[1:-1]]
    # Finals 300 and 200; at 0 calls the initial 10; at 20: 100 and 50; at 34: the finals.
    assert cells == ["swimmer/gibo_10runs", "2", "250 ± 50", "200", "300", "10", "75", "250"]


def test_anything_but_plain_data_in_the_pickle_is_refused(python, tmp_path):
    root = tmp_path / "gibo" / "experiments" / "rl_experiments"
    _experiment(root / "hopper" / "gibo_10runs", {}, {},
                payload=pickle.dumps({0: [1.0], "x": np.float64(2.0)}))  # fmt: skip
    result = subprocess.run([python, TOOL, f"--gibo={tmp_path / 'gibo'}",
                             "--experiments=hopper/gibo_10runs"],
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert result.stderr.startswith("error: cannot read") and "refusing numpy" in result.stderr
