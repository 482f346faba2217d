"""The README's worked example (registering a subclass) runs as written."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

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


# --- Every command in the README's shell blocks is a valid command -------------

PROGRAMS = {"saferl-train": "train", "saferl-tune": "tune", "saferl-search": "search",
            "saferl-plot": "plot", "saferl-evaluate": "evaluate",
            "saferl-sweep": "sweep"}  # fmt: skip
NOT_CHECKED = ("make test", "make venv", "make lint", "make format", "make bench-env",
               "make wheel", ".venv/bin/tensorboard", ".venv/bin/pip", "pip install")  # fmt: skip


def readme_commands() -> list[str]:
    """Each command of the README's ```sh blocks, continuations joined, comments cut."""
    text = (ROOT / "README.md").read_text()
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if line and not line.startswith("#"):
                commands.append(line)
    return commands


def _argv(command: str) -> list[str] | None:
    """The command as this interpreter runs it, or None when it is not checked here."""
    if command.startswith(NOT_CHECKED):
        return None
    if command.startswith("make train"):  # The Makefile's own recipe.
        makefile = (ROOT / "Makefile").read_text()
        env_id = re.search(r"^ENV_ID \?= (\S+)", makefile, re.M).group(1)
        recipe = re.search(r"^train:.*\n\t(.*)", makefile, re.M).group(1)
        args = re.search(r'ARGS="([^"]*)"', command)
        command = recipe.replace("$(VENV)/", ".venv/").replace("$(ENV_ID)", env_id)
        command = command.replace("$(ARGS)", args.group(1) if args else "")
    words = shlex.split(command)
    program = words[0].removeprefix(".venv/bin/")
    if program in PROGRAMS:
        return [sys.executable, "-m", f"saferl_tf.cli.{PROGRAMS[program]}", *words[1:]]
    if program == "python" and words[1].startswith("tools/"):
        return [sys.executable, str(ROOT / words[1]), *words[2:]]
    raise AssertionError(f"README command of an unknown kind: {command}")


def test_the_readme_shows_commands_of_every_program():
    argvs = [_argv(command) for command in readme_commands()]
    programs = {argv[2] for argv in argvs if argv and argv[1] == "-m"}
    assert {f"saferl_tf.cli.{name}" for name in PROGRAMS.values()} <= programs


@pytest.mark.parametrize("command", readme_commands())
def test_every_readme_command_passes_a_dry_run(command, subprocess_env, tmp_path):
    """Flags, agents, env ids, presets and config keys of each command are
    checked (``--dry_run``) in a folder that holds what earlier README steps make."""
    argv = _argv(command)
    if argv is None:
        pytest.skip("an install, lint or viewer command")
    (tmp_path / "my_agents.py").write_text(readme_example("my_agents.py"))
    best = tmp_path / "results" / "tune" / "example" / "best_config.yaml"
    best.parent.mkdir(parents=True)
    best.write_text("agent: random\nreplay_capacity: 5000\n")  # As the tuner writes it.
    if argv[2] == "saferl_tf.cli.evaluate":  # The first run's folder, as it trains it.
        from saferl_tf.training.experiment import RunSettings, train

        run_dir = tmp_path / "results" / "lambda" / "saferl_PointHazard-v0" / "0"
        train(RunSettings(env="saferl_PointHazard-v0", agent="lambda", config="debug",
                          run_dir=str(run_dir), total_steps=20, eval_every=0,
                          progress=False))  # fmt: skip
    before = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()}
    result = subprocess.run([*argv, "--dry_run"], capture_output=True, text=True,
                            env=subprocess_env, cwd=tmp_path, timeout=300)  # fmt: skip
    assert result.returncode == 0, f"{command}\n{result.stderr[-2000:]}"
    assert "dry run:" in result.stdout
    # A dry run writes nothing beside what the test made.
    made = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()}
    assert made == before
