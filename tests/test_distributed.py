"""Executors: run folders synced as they grow, retries of killed runs from their
checkpoints, sweeps and tuner studies on a local Ray cluster (loopback, 2 CPUs),
the same results tree from either executor, and the one-line error without Ray."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from saferl_tf.bo.study import DONE, Study
from saferl_tf.distributed import Job, LocalExecutor, sync
from saferl_tf.distributed.jobs import RUN_DIR, read_progress, was_lost
from saferl_tf.errors import ConfigError
from saferl_tf.training.experiment import parse_seeds

ROOT = Path(__file__).resolve().parent.parent
TRAIN, SWEEP, TUNE = (str(ROOT / "launchers" / f"{name}.py") for name in ("train", "sweep", "tune"))
FAKES = f"{ROOT / 'tests' / 'fake_envs.py'},{ROOT / 'tests' / 'fake_agents.py'}"


def test_a_folder_synced_in_steps_arrives_whole_and_only_complete_lines(tmp_path):
    worker, driver = tmp_path / "worker", tmp_path / "driver"
    (worker / "checkpoints").mkdir(parents=True)
    (worker / "checkpoints" / "ckpt-1.index").write_bytes(b"one")
    (worker / "metrics.jsonl").write_text('{"step": 1}\n{"step": 2')  # A line being written.
    syncer = sync.FolderSync(worker)
    syncer._sent = {}  # As a fresh worker folder: everything is new.
    payload, deleted = syncer.changes()
    assert sync.unpack(payload, driver, deleted) == 2
    syncer.commit()
    assert (driver / "metrics.jsonl").read_text() == '{"step": 1}\n'
    assert syncer.changes() is None  # Nothing changed since.
    # A checkpoint rotated out and a line completed: both follow.
    (worker / "checkpoints" / "ckpt-1.index").unlink()
    (worker / "checkpoints" / "ckpt-2.index").write_bytes(b"two")
    (worker / "metrics.jsonl").write_text('{"step": 1}\n{"step": 2}\n')
    payload, deleted = syncer.changes()
    assert deleted == ["checkpoints/ckpt-1.index"]
    sync.unpack(payload, driver, deleted)
    assert sorted(p.name for p in (driver / "checkpoints").iterdir()) == ["ckpt-2.index"]
    assert read_progress(driver).step == 2
    # The driver's copy packed whole, unpacked elsewhere: the same files.
    sync.unpack(sync.pack_folder(driver), tmp_path / "retry")
    assert sync.snapshot(tmp_path / "retry").keys() == sync.snapshot(driver).keys()


def test_unpacking_never_writes_outside_the_folder(tmp_path):
    import io
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo("../escaped")
        info.size = 1
        archive.addfile(info, io.BytesIO(b"x"))
    assert sync.unpack(buffer.getvalue(), tmp_path / "run", deleted=["../victim"]) == 0
    (tmp_path / "victim").write_text("kept")
    sync.unpack(sync.pack(tmp_path, []), tmp_path / "run", deleted=["../victim"])
    assert not (tmp_path / "escaped").exists() and (tmp_path / "victim").exists()


def test_seed_ranges_and_what_counts_as_a_lost_process():
    assert parse_seeds(["0-2", "7"]) == [0, 1, 2, 7]
    assert parse_seeds(["-1"]) == [-1]
    for bad in (["3-1"], ["a-b"], ["0-"]):
        with pytest.raises(ConfigError, match="integers or ranges"):
            parse_seeds(bad)
    assert was_lost(-signal.SIGKILL) and was_lost(128 + signal.SIGTERM)
    assert not was_lost(1) and not was_lost(2)  # An error of the run's own: not retried.


def test_the_progress_view_counts_jobs_and_shows_each_running_ones_step_and_return():
    import io

    from saferl_tf.distributed import JobResult, ProgressBoard, RunProgress

    class Running:
        def running(self):
            return ["a/0", "b/1"]

        def progress(self):
            return {"a/0": RunProgress(1200, 4.25), "b/1": RunProgress()}

    out = io.StringIO()
    board = ProgressBoard(out, total=5, every=3600)
    board.count_finished(1, 0)
    board.finished(JobResult(Job("c", "c", ()), 1, 3.0, error="boom"))
    board.show(Running(), pending=1)  # Not yet: every hour.
    assert out.getvalue() == ""
    board.show(Running(), pending=1, force=True)
    lines = out.getvalue().splitlines()
    assert lines[0] == "runs: 1 pending, 2 running, 1 finished, 1 failed (5 in all)"
    assert lines[1].split() == ["a/0", "step", "1200", "return", "4.25"]
    assert lines[2].split() == ["b/1", "step", "-", "return", "-"]


def _train_job(name: str, steps: int, checkpoint_every: int, seed: int = 0) -> Job:
    return Job(name=name, folder=name, module_args=(
        "saferl_tf.cli.train", "--agent=random", "--env=saferl_TestCounting-v0",
        f"--imports={FAKES}", f"--total_steps={steps}", f"--checkpoint_every={checkpoint_every}",
        "--eval_every=0", f"--seed={seed}", f"--run_dir={RUN_DIR}", "--noprogress"))  # fmt: skip


def _kill_after_first_checkpoint(checkpoints: Path, find_pid, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if list(checkpoints.glob("ckpt-*.index")):
            pid = find_pid()
            if pid:
                os.kill(pid, signal.SIGKILL)
                return
        time.sleep(0.05)
    raise AssertionError(f"no checkpoint in {checkpoints} within {timeout} s")


def _wait(executor, timeout: float = 300):
    deadline, results = time.monotonic() + timeout, []
    while executor.running() and time.monotonic() < deadline:
        results += executor.wait(1.0)
    return results


def test_the_local_executor_retries_a_killed_run_from_its_checkpoint(monkeypatch, tmp_path):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    executor = LocalExecutor(tmp_path, workers=1, max_retries=1)
    executor.submit(_train_job("run", 30_000, 1_000))
    run_dir = tmp_path / "run"

    def training_pid():  # The run holds its folder's lock; the lock file names it.
        text = (run_dir / ".lock").read_text().strip() if (run_dir / ".lock").exists() else ""
        return int(text) if text else None

    _kill_after_first_checkpoint(run_dir / "checkpoints", training_pid)
    (result,) = _wait(executor)
    executor.close()
    assert result.ok and result.attempts == 2, result
    assert json.loads((run_dir / "summary.json").read_text())["env_steps"] == 30_000
    assert "resumed from" in (run_dir / "stderr.log").read_text()


def test_a_run_failing_on_its_own_is_not_retried(monkeypatch, tmp_path):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    executor = LocalExecutor(tmp_path, workers=1, max_retries=3)
    job = Job("bad", "bad", ("saferl_tf.cli.train", "--agent=nonexistent", f"--run_dir={RUN_DIR}"))
    executor.submit(job)
    (result,) = _wait(executor)
    assert result.returncode == 2 and result.attempts == 1
    assert "unknown agent 'nonexistent'" in result.error


# --- Ray -------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as handle:
        handle.bind(("127.0.0.1", 0))
        return handle.getsockname()[1]


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    """(address, environment for drivers): a one-node Ray cluster with 2 CPUs, as
    `ray start` makes one. HOME is a fresh folder: a ~/.ray/auth_token left by an
    earlier local Ray instance would refuse the drivers this cluster's token."""
    pytest.importorskip("ray", reason="the distributed extra (make test installs it)")
    home = tmp_path_factory.mktemp("home")
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    env = dict(os.environ, PYTHONPATH=path, TF_CPP_MIN_LOG_LEVEL="3", HOME=str(home))
    port = _free_port()
    ray_cli = str(Path(sys.executable).parent / "ray")
    subprocess.run([ray_cli, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}",
                    "--num-cpus=2", "--include-dashboard=false", "--disable-usage-stats"],
                   check=True, env=env, capture_output=True, timeout=180)  # fmt: skip
    yield f"127.0.0.1:{port}", env
    subprocess.run([ray_cli, "stop", "--force"], env=env, capture_output=True, timeout=180)


def _run(command, env, timeout=600):
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr[-4000:]
    return result


def test_a_study_on_ray_runs_synthetic_and_training_trials(ray_cluster, python, tmp_path):
    address, env = ray_cluster
    ray = ["--executor=ray", f"--address={address}"]
    study_dir = tmp_path / "gardner"
    _run([python, TUNE, "--synthetic=gardner", "--trials=5", "--initial=3",
          f"--study_dir={study_dir}", *ray], env)  # fmt: skip
    study = Study.load(study_dir)
    assert len(study.with_status(DONE)) == 5
    assert {t.source for t in study.trials[3:]} == {"trieste-eci"}
    training = tmp_path / "training"
    result = _run([python, TUNE, "--agent=test_flaky", "--env=saferl_TestCounting-v0",
                   "--space=diverge:0:0.4", "--trials=2", "--initial=2", "--trial_steps=60",
                   "--cost_limit=5", f"--imports={FAKES}", f"--study_dir={training}", *ray],
                  env)  # fmt: skip
    study = Study.load(training)
    assert len(study.with_status(DONE)) == 2, result.stdout
    for trial in study.trials:  # Back in the driver's tree without a shared file system.
        run = training / trial.directory_name
        assert json.loads((run / "summary.json").read_text())["env_steps"] == 60
        assert list((run / "checkpoints").glob("ckpt-60.index"))
    # A trial that fails on its own (a NaN) is recorded as failed, not retried.
    diverging = tmp_path / "diverging"
    _run([python, TUNE, "--agent=test_flaky", "--env=saferl_TestCounting-v0",
          "--space=diverge:0.6:1", "--trials=1", "--initial=1", "--trial_steps=60",
          f"--imports={FAKES}", f"--study_dir={diverging}", *ray], env)  # fmt: skip
    (trial,) = Study.load(diverging).trials
    assert trial.status == "failed" and "non-finite loss" in trial.error
    log = (diverging / trial.directory_name / "stderr.log").read_text()
    assert log.count("saferl_tf: training test_flaky") == 1  # One attempt only.


def test_a_run_killed_on_ray_is_retried_from_its_checkpoint(ray_cluster, python, tmp_path):
    address, env = ray_cluster
    results = tmp_path / "results"
    command = [python, SWEEP, "--agents=random", "--envs=saferl_TestCounting-v0", "--seeds=4242",
               "--total_steps=30000", "--checkpoint_every=1000", "--eval_every=0",
               f"--imports={FAKES}", f"--results_dir={results}", "--executor=ray",
               f"--address={address}"]  # fmt: skip
    driver = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)  # fmt: skip
    run_dir = results / "random" / "saferl_TestCounting-v0" / "4242"

    def training_pid():
        found = subprocess.run(["pgrep", "-f", "saferl_tf.cli.train.*--seed=4242"],
                               capture_output=True, text=True)  # fmt: skip
        return int(found.stdout.split()[0]) if found.stdout.strip() else None

    # The first checkpoint synced into the driver's tree; then the run's process dies.
    _kill_after_first_checkpoint(run_dir / "checkpoints", training_pid)
    _, stderr = driver.communicate(timeout=600)
    assert driver.returncode == 0, stderr[-4000:]
    assert json.loads((run_dir / "summary.json").read_text())["env_steps"] == 30_000
    assert "resumed from" in (run_dir / "stderr.log").read_text()


def test_a_killed_driver_on_ray_repeats_no_finished_trial(ray_cluster, python, tmp_path):
    address, env = ray_cluster
    study_dir = tmp_path / "study"
    command = [python, TUNE, "--synthetic=gardner", "--synthetic_sleep=2", "--trials=6",
               "--initial=6", f"--study_dir={study_dir}", "--executor=ray",
               f"--address={address}"]  # fmt: skip
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)  # fmt: skip
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        study = Study.load(study_dir) if (study_dir / "study.json").exists() else None
        if study and len(study.with_status(DONE)) >= 2:
            break
        time.sleep(0.1)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    finished = {t.index: (t.started, t.outcome) for t in Study.load(study_dir).with_status(DONE)}
    assert 2 <= len(finished) < 6
    result = _run(command, env)
    assert f"{len(finished)} finished trials kept" in result.stdout
    after = Study.load(study_dir)
    assert len(after.with_status(DONE)) == 6
    for trial in after.trials:
        if trial.index in finished:
            assert (trial.started, trial.outcome) == finished[trial.index]


def _tree(root: Path) -> dict[str, int]:
    """Relative file -> line count for metrics (1 for other files); event files
    (named by time and process) by folder."""
    tree = {}
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.name == ".lock":
            continue
        name = path.relative_to(root).as_posix()
        if "events.out.tfevents" in name:
            name = name.split("events.out.tfevents")[0] + "events.out.tfevents.*"
            tree[name] = tree.get(name, 0) + 1
        elif path.suffix == ".jsonl":
            tree[name] = len(path.read_text().splitlines())
        else:
            tree[name] = 1
    return tree


def test_ray_and_local_executors_make_the_same_results_tree(ray_cluster, python, tmp_path):
    address, env = ray_cluster
    envs = "saferl_TestCounting-v0,saferl_TestCountingLong-v0"
    # One seed per task: two runs per sweep cover the tree's task level and keep the test short.
    base = [python, SWEEP, "--agents=random", f"--envs={envs}", "--seeds=0",
            "--total_steps=300", "--checkpoint_every=100", "--eval_every=150",
            f"--imports={FAKES}"]  # fmt: skip
    ray = ["--executor=ray", f"--address={address}"]
    _run([*base, f"--results_dir={tmp_path / 'local'}", "--workers=2"], env)
    _run([*base, f"--results_dir={tmp_path / 'ray'}", *ray], env)
    # With a shared folder: runs write there, then land in the results tree too.
    _run([*base, f"--results_dir={tmp_path / 'copied'}", *ray, f"--storage={tmp_path / 'shared'}"],
         env)  # fmt: skip
    local = _tree(tmp_path / "local")
    assert len([name for name in local if name.endswith("summary.json")]) == 2
    assert _tree(tmp_path / "ray") == local
    assert _tree(tmp_path / "shared") == local
    assert _tree(tmp_path / "copied") == local


def test_without_ray_the_ray_executor_is_a_one_line_error(python, subprocess_env, tmp_path):
    blocker = tmp_path / "no_ray" / "ray"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('No module named ray')\n")
    path = f"{blocker.parent}{os.pathsep}{subprocess_env['PYTHONPATH']}"
    env = dict(subprocess_env, PYTHONPATH=path)
    for program, args in (
        (TRAIN, ["--agent=random", "--env=saferl_TestCounting-v0", "--seeds=0-1"]),
        (TUNE, ["--synthetic=gardner", f"--study_dir={tmp_path / 's'}"]),
    ):
        result = subprocess.run(
            [python, program, *args, "--executor=ray", f"--imports={FAKES}"],
            env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path,
        )  # fmt: skip
        lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert result.returncode == 2 and len(lines) == 1, result.stderr[-2000:]
        assert "pip install -e .[distributed]" in lines[0]
