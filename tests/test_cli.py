"""saferl_tf.cli: what every program shares (the run folder flag, error handling)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from saferl_tf import cli

ROOT = Path(__file__).resolve().parent.parent


def test_search_writes_to_run_dir_and_reads_log_dir_as_its_old_name(
    python, subprocess_env, tmp_path
):
    def search(*args):
        return subprocess.run(
            [python, str(ROOT / "launchers" / "search.py"), "--method=ars", "--objective=lqr",
             "--budget=2", "--noprogress", *args],
            capture_output=True, text=True, env=subprocess_env, timeout=300, cwd=tmp_path,
        )  # fmt: skip

    result = search(f"--run_dir={tmp_path / 'new'}")
    assert result.returncode == 0, result.stderr
    assert "deprecated" not in result.stderr
    assert json.loads((tmp_path / "new" / "summary.json").read_text())["evaluations"] == 2
    result = search(f"--log_dir={tmp_path / 'old'}")
    assert result.returncode == 0, result.stderr
    assert "note: --log_dir is deprecated for the run folder; use --run_dir" in result.stderr
    assert (tmp_path / "old" / "summary.json").is_file()
    assert not (tmp_path / "results").exists()  # Neither run fell back to the default tree.


def test_run_guarded_loads_no_tensorflow(python, subprocess_env):
    # Programs that never train (plots) use it; TensorFlow would cost them seconds.
    script = (
        "import sys\n"
        "from saferl_tf import cli\n"
        "cli.run_guarded(lambda: None)\n"
        "print('tensorflow' in sys.modules)\n"
    )
    result = subprocess.run([python, "-c", script], capture_output=True, text=True,
                            env=subprocess_env, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_ctrl_c_outside_the_training_loop_is_one_line_and_exit_130(capsys):
    def interrupted():
        raise KeyboardInterrupt

    with pytest.raises(SystemExit) as exit_info:
        cli.run_guarded(interrupted)
    assert exit_info.value.code == 130
    assert capsys.readouterr().err.strip().splitlines() == [
        "saferl_tf: stopped by Ctrl-C; its last checkpoint, if any, is kept"
    ]
