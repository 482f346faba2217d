"""tools/archive_runs.py: finished runs' small files archived, and put back by tar."""

from __future__ import annotations

import os
import subprocess
import tarfile

from conftest import ROOT

TOOL = str(ROOT / "tools" / "archive_runs.py")


def _run(folder, finished=True):
    folder.mkdir(parents=True)
    (folder / "config.json").write_text('{"seed": 0}')
    (folder / "metrics.jsonl").write_text('{"step": 1}\n')
    (folder / "checkpoints").mkdir()
    (folder / "checkpoints" / "ckpt-1.data").write_bytes(b"\0" * 1000)
    if finished:
        (folder / "summary.json").write_text('{"env_steps": 1}')


def test_finished_runs_are_archived_without_checkpoints_and_untar_in_place(python, tmp_path):
    results, output = tmp_path / "results", tmp_path / "archives"
    _run(results / "cpo" / "sgym_A-v1" / "0")
    _run(results / "cpo" / "sgym_A-v1" / "1", finished=False)
    done = subprocess.run([python, TOOL, f"--results={results}", f"--output_dir={output}"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    assert sorted(os.listdir(output)) == ["cpo_sgym_A-v1_0.tar.gz"], done.stdout
    with tarfile.open(output / "cpo_sgym_A-v1_0.tar.gz") as archive:
        assert sorted(archive.getnames()) == [
            "cpo/sgym_A-v1/0/config.json",
            "cpo/sgym_A-v1/0/metrics.jsonl",
            "cpo/sgym_A-v1/0/summary.json",
        ]
        restored = tmp_path / "restored"
        archive.extractall(restored, filter="data")
    assert (restored / "cpo/sgym_A-v1/0/metrics.jsonl").read_text() == '{"step": 1}\n'
    # Nothing changed: the archive is left as it is; a changed run refreshes it.
    again = subprocess.run([python, TOOL, f"--results={results}", f"--output_dir={output}"],
                           capture_output=True, text=True, check=True)  # fmt: skip
    assert "unchanged" in again.stdout
    metrics = results / "cpo" / "sgym_A-v1" / "0" / "metrics.jsonl"
    metrics.write_text('{"step": 1}\n{"step": 2}\n')
    later = os.stat(output / "cpo_sgym_A-v1_0.tar.gz").st_mtime + 10
    os.utime(metrics, (later, later))
    refreshed = subprocess.run([python, TOOL, f"--results={results}", f"--output_dir={output}"],
                               capture_output=True, text=True, check=True)  # fmt: skip
    assert "wrote" in refreshed.stdout
    with tarfile.open(output / "cpo_sgym_A-v1_0.tar.gz") as archive:
        data = archive.extractfile("cpo/sgym_A-v1/0/metrics.jsonl").read()
    assert data.count(b"\n") == 2


def test_unfinished_runs_only_on_request_and_bad_folders_exit_2(python, tmp_path):
    results, output = tmp_path / "results", tmp_path / "archives"
    _run(results / "a" / "0", finished=False)
    nothing = subprocess.run([python, TOOL, f"--results={results}", f"--output_dir={output}"],
                             capture_output=True, text=True)  # fmt: skip
    assert nothing.returncode == 2 and "no run folders" in nothing.stderr
    subprocess.run([python, TOOL, f"--results={results}", f"--output_dir={output}", "--unfinished"],
                   capture_output=True, text=True, check=True)  # fmt: skip
    assert os.listdir(output) == ["a_0.tar.gz"]
    inside = subprocess.run([python, TOOL, f"--results={results}", f"--output_dir={results}/x"],
                            capture_output=True, text=True)  # fmt: skip
    assert inside.returncode == 2 and "outside" in inside.stderr
    missing = subprocess.run([python, TOOL, f"--results={tmp_path}/none", f"--output_dir={output}"],
                             capture_output=True, text=True)  # fmt: skip
    assert missing.returncode == 2 and "not a folder" in missing.stderr
