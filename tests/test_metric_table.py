"""tools/metric_table.py --windows: training episodes per window of steps."""

from __future__ import annotations

import json
import subprocess

from conftest import ROOT

TOOL = str(ROOT / "tools" / "metric_table.py")


def _write(folder, episodes):
    folder.mkdir(parents=True)
    rows = [{"step": step, "train/episode_return": ret, "train/episode_cost": cost,
             "train/episode_length": length} for step, ret, cost, length in episodes]  # fmt: skip
    rows.insert(1, {"step": 150, "eval/episode_return": 1e6})  # not a training episode
    (folder / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))


def _table(python, root, *flags):
    return subprocess.run([python, TOOL, f"--data_path={root}", *flags],
                          capture_output=True, text=True)  # fmt: skip


def test_windows_pool_episodes_by_step_and_cost_per_step_weights_by_length(python, tmp_path):
    # Run 0: (0, 200] has a short costly episode and a long cheap one; (200, 400] one episode.
    _write(
        tmp_path / "sac" / "sgym_A-v1" / "0",
        [(100, 10.0, 8.0, 100), (200, 30.0, 2.0, 100 * 4), (400, 50.0, 1.0, 200)],
    )
    # Run 1 has no episode in the second window: the window counts 1 run there.
    _write(tmp_path / "sac" / "sgym_A-v1" / "1", [(150, 20.0, 5.0, 50)])
    done = _table(python, tmp_path, "--windows=200,400")
    assert done.returncode == 0, done.stderr
    rows = [line.split(" | ") for line in done.stdout.splitlines() if "sgym_A-v1" in line]
    first, second = rows
    # Run 0: return 20, cost 5 per episode, length 250, cost per step 10/500 = 0.02 (not the
    # mean of the per-episode rates, 0.045); run 1: 20, 5, 50, 0.1.
    assert first[2:] == ["0-200", "2", "20 ± 0", "5 ± 0", "150 ± 1e+02", "0.06 ± 0.04 |"]
    assert second[2:] == ["200-400", "1", "50", "1", "200", "0.005 |"]


def test_windows_must_increase(python, tmp_path):
    _write(tmp_path / "sac" / "sgym_A-v1" / "0", [(100, 1.0, 0.0, 10)])
    done = _table(python, tmp_path, "--windows=400,200")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("error: --windows must be positive")
