"""Archives the small files of finished runs so that a results tree can be redrawn.

Checkpoints and replay data are large and stay behind; what a figure or table
needs is each run's configuration, metrics and summary. Every run folder (a
folder holding `summary.json`) under --results becomes one `.tar.gz` in
--output_dir, named after its path (`cpo/sgym_X/0` -> `cpo_sgym_X_0.tar.gz`),
with paths relative to --results: `tar xzf ARCHIVE -C RESULTS` puts it back.

    .venv/bin/python tools/archive_runs.py --results=runs/halfcheetah \
        --output_dir=docs/data/halfcheetah

Unfinished runs (no summary.json) are skipped unless --unfinished; an archive
that already exists is replaced only when its run has changed since.
"""

from __future__ import annotations

import pathlib
import sys
import tarfile

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("results", None, "The results tree whose run folders to archive.")
flags.DEFINE_string("output_dir", None, "Where the archives go (created if missing).")
flags.DEFINE_list(
    "files",
    ["config.json", "metrics.jsonl", "summary.json"],
    "The files of each run folder to archive (those a run lacks are left out).",
)
flags.DEFINE_bool("unfinished", False, "Also archive runs without summary.json.")
flags.mark_flags_as_required(["results", "output_dir"])

# The file that marks a finished run, and the one whose presence marks a run folder at all.
FINISHED = "summary.json"
RUN_MARKER = "config.json"


def run_folders(results: pathlib.Path, unfinished: bool) -> list[pathlib.Path]:
    """The run folders under `results`, sorted: those with summary.json (and
    with --unfinished, those with only config.json)."""
    marker = RUN_MARKER if unfinished else FINISHED
    return sorted(path.parent for path in results.rglob(marker))


def archive_name(results: pathlib.Path, run: pathlib.Path) -> str:
    return "_".join(run.relative_to(results).parts) + ".tar.gz"


def archive_run(results: pathlib.Path, run: pathlib.Path, output_dir: pathlib.Path,
                files: list[str]) -> pathlib.Path | None:  # fmt: skip
    """Writes (or refreshes) one run's archive; returns its path, or None when
    the run has none of `files` or the archive is newer than every one of them."""
    members = [run / name for name in files if (run / name).is_file()]
    if not members:
        return None
    target = output_dir / archive_name(results, run)
    newest = max(member.stat().st_mtime for member in members)
    if target.exists() and target.stat().st_mtime >= newest:
        return None
    partial = target.with_suffix(".partial")
    with tarfile.open(partial, "w:gz") as archive:
        for member in members:
            archive.add(member, arcname=str(member.relative_to(results)))
    partial.replace(target)  # Never a half-written archive under the final name.
    return target


def main(argv):
    del argv
    results = pathlib.Path(FLAGS.results)
    if not results.is_dir():
        print(f"archive_runs: --results={results} is not a folder", file=sys.stderr)
        sys.exit(2)
    output_dir = pathlib.Path(FLAGS.output_dir)
    if output_dir.resolve().is_relative_to(results.resolve()):
        print("archive_runs: --output_dir must lie outside --results", file=sys.stderr)
        sys.exit(2)
    runs = run_folders(results, FLAGS.unfinished)
    if not runs:
        print(f"archive_runs: no run folders with {FINISHED} under {results}", file=sys.stderr)
        sys.exit(2)
    output_dir.mkdir(parents=True, exist_ok=True)
    for run in runs:
        written = archive_run(results, run, output_dir, FLAGS.files)
        state = "unchanged" if written is None else f"wrote {written}"
        print(f"{run.relative_to(results)}: {state}")


if __name__ == "__main__":
    app.run(main)
