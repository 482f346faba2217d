"""The package as a user installs it: a wheel in a fresh virtual environment,
its console scripts run from a folder outside the repository."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PIP = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
# Each program and flags its --help must show.
PROGRAMS = {
    "saferl-train": ("--run_dir", "--seed"),
    "saferl-search": ("--run_dir", "--seed"),
    "saferl-tune": ("--study_dir", "--seed"),
    "saferl-plot": ("--data_path", "--output_dir"),
}


def _run(command, **kwargs):
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, **kwargs)
    assert result.returncode == 0, f"{command}: {result.stderr}"
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    # Built from a copy of the files a release holds: the build writes build/ and
    # *.egg-info beside its sources, and the copy shows nothing else is needed.
    source = tmp_path_factory.mktemp("source")
    for name in ("setup.cfg", "pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(
        ROOT / "saferl_tf", source / "saferl_tf", ignore=shutil.ignore_patterns("__pycache__")
    )
    dist = tmp_path_factory.mktemp("dist")
    _run([*PIP, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", dist, source])
    (built,) = dist.glob("saferl_tf-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    """A fresh environment holding the wheel; the dependencies come from the test's own."""
    venv = tmp_path_factory.mktemp("venv")
    _run([sys.executable, "-m", "venv", "--without-pip", venv])
    python = venv / "bin" / "python"
    _run([*PIP, "--python", python, "install", "--no-deps", "--no-index", wheel])
    site = _run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
    # A bare folder in a .pth file joins sys.path without the .pth files inside it
    # running, so the editable install's finder (saferl_tf -> the checkout) stays out.
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    Path(site.stdout.strip(), "_saferl_deps.pth").write_text("\n".join(sorted(ours)) + "\n")
    return venv


@pytest.fixture
def user_env():
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SAFERL_TF_CONFIGS")}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    return env


def test_every_python_folder_is_a_package_in_the_wheel(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    folders = {p.parent.relative_to(ROOT) for p in (ROOT / "saferl_tf").rglob("*.py")}
    missing = [str(f) for f in folders if f"{f.as_posix()}/__init__.py" not in names]
    assert not missing, f"folders without __init__.py are left out of the wheel: {missing}"
    presets = {p.name for p in (ROOT / "saferl_tf" / "configs").glob("*.yaml")}
    assert presets and {f"saferl_tf/configs/{name}" for name in presets} <= names
    assert "saferl_tf/envs/assets/half_cheetah_safe.xml" in names
    assert any(name.endswith(".dist-info/LICENSE") for name in names)


def test_the_installed_package_imports_from_the_venv_with_its_presets(venv, user_env, tmp_path):
    script = (
        "import json, saferl_tf, saferl_tf.agents, saferl_tf.planning.cem\n"
        "from saferl_tf.config import configs_dir\n"
        "print(json.dumps([saferl_tf.__file__, str(configs_dir())]))\n"
    )
    result = _run([venv / "bin" / "python", "-c", script], env=user_env, cwd=tmp_path)
    package, configs = json.loads(result.stdout.strip().splitlines()[-1])
    assert Path(package).resolve().is_relative_to(venv.resolve()), package  # Not the checkout.
    assert Path(configs).resolve().is_relative_to(venv.resolve()), configs
    assert (Path(configs) / "random.yaml").is_file()
    assert (Path(package).parent / "envs" / "assets" / "half_cheetah_safe.xml").is_file()


@pytest.mark.parametrize("program", list(PROGRAMS))
def test_console_script_help_names_the_output_flags(venv, user_env, tmp_path, program):
    result = subprocess.run([venv / "bin" / program, "--help"], capture_output=True, text=True,
                            env=user_env, cwd=tmp_path, timeout=120)  # fmt: skip
    assert "Traceback" not in result.stderr
    assert f"{program} --" in result.stdout  # The program's own docstring, as usage.
    if program == "saferl-plot":  # Its docstring's "95%" is not a format spec.
        assert "95% stratified-bootstrap" in result.stdout
    for flag in PROGRAMS[program]:
        assert f"  {flag}:" in result.stdout


def test_saferl_train_runs_outside_the_repository(venv, user_env, tmp_path):
    result = subprocess.run(
        [venv / "bin" / "saferl-train", "--agent=random", "--env=saferl_PointHazard-v0",
         "--config=debug", "--total_steps=200", "--eval_every=0", "--noprogress"],
        capture_output=True, text=True, env=user_env, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    run = tmp_path / "results" / "random" / "saferl_PointHazard-v0" / "0"
    config = json.loads((run / "config.json").read_text())
    assert config["agent_config"]["replay_capacity"] == 10_000  # The packaged debug preset.
    assert (run / "metrics.jsonl").read_text().strip()
    assert list((run / "checkpoints").glob("ckpt-200.index"))
