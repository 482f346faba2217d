"""The README's worked example (registering a subclass) runs as written."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def readme_example(name: str) -> str:
    text = (ROOT / "README.md").read_text()
    match = re.search(rf"<!-- example: {re.escape(name)} -->\n```python\n(.*?)```", text, re.S)
    assert match, f"README has no example {name}"
    return match.group(1)


def test_readme_agent_example_trains_from_the_launcher(python, subprocess_env, tmp_path):
    module = tmp_path / "my_agents.py"
    module.write_text(readme_example("my_agents.py"))
    run_dir = tmp_path / "run"
    result = subprocess.run(
        [
            python,
            str(ROOT / "launchers" / "train.py"),
            f"--imports={ROOT / 'tests' / 'fake_envs.py'},{module}",
            "--agent=cautious_random",
            "--config=debug",
            "--config.action_scale=0.1",
            "--env=saferl_TestCounting-v0",
            "--total_steps=200",
            "--eval_every=100",
            f"--run_dir={run_dir}",
        ],
        capture_output=True,
        text=True,
        env=subprocess_env,
        timeout=300,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    actions = np.concatenate([np.load(f)["action"] for f in (run_dir / "replay").glob("*.npz")])
    assert len(actions) == 200
    assert np.abs(actions).max() <= 0.1 and np.abs(actions).max() > 0.05
