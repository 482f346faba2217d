"""Figures are written atomically, and unwritable outputs are one-line errors.

The tests run as root, for whom permissions do not block writing, so an unwritable
place is a path below a regular file ("Not a directory" for root too) or a failure
injected into savefig.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
from pathlib import Path

import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from saferl_tf.analysis.output import OutputError, make_output_dir, save_figure
from saferl_tf.errors import UserError

ROOT = Path(__file__).resolve().parent.parent


def figure() -> Figure:
    result = Figure(figsize=(2, 2))
    FigureCanvasAgg(result)
    result.subplots().plot([0, 1], [1, 0])
    return result


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_save_figure_writes_each_format_and_replaces_an_earlier_figure(tmp_path):
    for suffix, magic in ((".png", b"\x89PNG"), (".pdf", b"%PDF")):
        path = tmp_path / f"plot{suffix}"
        path.write_bytes(b"old")
        path.chmod(0o640)
        assert save_figure(figure(), path, dpi=50) == path
        assert path.read_bytes().startswith(magic)
        assert path.stat().st_mode & 0o777 == 0o640  # A replaced figure keeps its mode.
    old_umask = os.umask(0o027)
    try:
        save_figure(figure(), tmp_path / "new.png")
    finally:
        os.umask(old_umask)
    assert (tmp_path / "new.png").stat().st_mode & 0o777 == 0o640  # Not tempfile's 0o600.
    assert leftovers(tmp_path) == []


def test_a_failed_write_keeps_the_earlier_figure_and_leaves_no_temporary_file(
    tmp_path, monkeypatch
):
    path = tmp_path / "plot.png"
    path.write_bytes(b"the earlier figure")

    def disk_full(self, stream, **kwargs):
        stream.write(b"\x89PNG half a figure")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(Figure, "savefig", disk_full)
    with pytest.raises(OutputError) as raised:
        save_figure(figure(), path)
    assert str(raised.value) == f"cannot write {path}: No space left on device"
    assert isinstance(raised.value, UserError) and raised.value.exit_code == 2
    assert path.read_bytes() == b"the earlier figure"
    assert leftovers(tmp_path) == []


def test_save_figure_writes_through_a_symbolic_link(tmp_path):
    (tmp_path / "figures").mkdir()
    link = tmp_path / "latest.png"
    link.symlink_to(tmp_path / "figures" / "run.png")
    save_figure(figure(), link)
    assert link.is_symlink()
    assert (tmp_path / "figures" / "run.png").read_bytes().startswith(b"\x89PNG")


def test_unusable_output_paths_raise_one_line_errors(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(OutputError) as raised:
        save_figure(figure(), blocker / "x.png")
    assert str(raised.value) == f"cannot write {blocker / 'x.png'}: Not a directory"
    (tmp_path / "taken.png").mkdir()
    with pytest.raises(OutputError, match="taken.png: Is a directory$"):
        save_figure(figure(), tmp_path / "taken.png")
    assert leftovers(tmp_path) == []
    with pytest.raises(OutputError) as raised:
        make_output_dir(blocker / "plots" / "deeper")
    assert str(raised.value) == (
        f"cannot create the output folder {blocker / 'plots' / 'deeper'}: Not a directory"
    )
    with pytest.raises(OutputError) as raised:
        make_output_dir(blocker)
    assert str(raised.value) == f"cannot use {blocker} as the output folder: it is a file"
    assert make_output_dir(tmp_path / "new" / "plots").is_dir()


def assert_one_line_error(result, *words):
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    for word in words:
        assert word in errors[0], errors[0]
    assert result.stdout == ""  # No figure was announced as written.


def run_tool(python, env, tool, *args):
    return subprocess.run(
        [python, str(ROOT / "tools" / tool), *args],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=300,
    )  # fmt: skip


def test_plot_tool_output_below_a_file_is_one_line_exit_2(python, subprocess_env, tmp_path):
    run = tmp_path / "results" / "cem" / "EnvP-v0" / "0"
    run.mkdir(parents=True)
    rows = [{"step": 100, "eval/episode_return": 1.0, "eval/episode_cost": 0.0}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    data = f"--data_path={tmp_path / 'results'}"
    folder = run_tool(python, subprocess_env, "plot.py", data, f"--output_dir={blocker / 'plots'}")
    assert_one_line_error(folder, f"cannot create the output folder {blocker / 'plots'}")
    (tmp_path / "out" / "EnvP-v0.png").mkdir(parents=True)  # The figure's name is taken.
    figure = run_tool(python, subprocess_env, "plot.py", data, f"--output_dir={tmp_path / 'out'}")
    assert_one_line_error(
        figure, f"cannot write {tmp_path / 'out' / 'EnvP-v0.png'}: Is a directory"
    )


def test_plot_search_tool_output_below_a_file_is_one_line_exit_2(python, subprocess_env, tmp_path):
    run = tmp_path / "runs" / "ars" / "synthetic-D2-f0" / "0"
    run.mkdir(parents=True)
    rows = [{"step": 1, "search/normalized_regret": 1.0, "search/best_so_far": 0.0}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    result = run_tool(python, subprocess_env, "plot_search.py",
                      f"--data_path={tmp_path / 'runs'}", f"--output_dir={blocker}")  # fmt: skip
    assert_one_line_error(result, f"cannot use {blocker} as the output folder: it is a file")
