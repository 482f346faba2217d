"""Running trials as child processes and reading back their outcomes.

A training trial is ``launchers/train.py`` with the trial's parameters as a
config file, in ``<study>/trial_<i>/``; a synthetic trial is
``python -m saferl_tf.bo.synthetic``. Either writes ``summary.json``, from
which ``read_outcome`` builds an ``Outcome``. Children get SIGTERM when the
tuner dies (Linux), so a killed study leaves no orphan trial running: a
training trial then checkpoints and is resumed when the study is.
"""

from __future__ import annotations

import dataclasses
import json
import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from saferl_tf.bo.study import Outcome, Trial, make_folder, write_atomically
from saferl_tf.errors import UserError

CONSTRAINTS = {"episode_cost": "eval/episode_cost", "cost_rate": "train/cost_rate"}


@dataclasses.dataclass
class TrialSpec:
    """How every trial of a study runs (the parts that do not change per trial)."""

    agent: str | None  # None for a synthetic problem.
    env: str | None
    synthetic: str | None = None
    base_config: str = ""
    trial_steps: int = 20_000
    eval_episodes: int = 1
    safety: bool = True
    seed: int = 0
    imports: tuple[str, ...] = ()
    train_args: tuple[str, ...] = ()
    synthetic_sleep: float = 0.0

    def command(self, trial: Trial, directory: Path) -> list[str]:
        params_file = directory / "params.yaml"
        if self.synthetic:
            return [
                sys.executable, "-m", "saferl_tf.bo.synthetic",
                f"--problem={self.synthetic}", f"--params={params_file}",
                f"--output={directory / 'summary.json'}", f"--sleep={self.synthetic_sleep}",
            ]  # fmt: skip
        config = ",".join(part for part in (self.base_config, str(params_file)) if part)
        command = [
            sys.executable, "-m", "saferl_tf.cli.train",  # Also from an installed wheel.
            f"--agent={self.agent}", f"--env={self.env}", f"--config={config}",
            f"--run_dir={directory}", f"--total_steps={self.trial_steps}",
            f"--eval_every={self.trial_steps}", f"--eval_episodes={self.eval_episodes}",
            f"--checkpoint_every={max(self.trial_steps // 4, 1)}",
            f"--seed={self.seed}", "--safety" if self.safety else "--nosafety",
            "--noprogress",
        ]  # fmt: skip
        if self.imports:
            command.append(f"--imports={','.join(self.imports)}")
        return command + list(self.train_args)


def _die_with_parent() -> None:
    """In the child: ask Linux for SIGTERM when the tuner process dies."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class RunningTrial:
    def __init__(self, trial: Trial, spec: TrialSpec, study_dir: Path):
        self.trial = trial
        self.directory = study_dir / trial.directory_name
        make_folder(self.directory)
        values = dict(trial.params)
        if spec.agent:
            values["agent"] = spec.agent  # Read back (and skipped) by --config.
        write_atomically(self.directory / "params.yaml", yaml.safe_dump(values, sort_keys=False))
        self._stdout = self._stderr = None
        self.started = time.monotonic()
        try:
            self._stdout = open(self.directory / "stdout.log", "ab")  # noqa: SIM115
            self._stderr = open(self.directory / "stderr.log", "ab")  # noqa: SIM115
            self.process = subprocess.Popen(
                spec.command(trial, self.directory),
                stdout=self._stdout,
                stderr=self._stderr,
                stdin=subprocess.DEVNULL,
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
            )
        except OSError as error:
            self.close()
            raise UserError(
                f"cannot start trial {trial.index} in {self.directory} "
                f"({error.strerror or error}); free disk space or fix the permissions, then "
                "run the same command again to resume"
            ) from None

    def finished(self) -> bool:
        return self.process.poll() is not None

    def close(self) -> float:
        """Closes the logs; returns the seconds the process ran."""
        for log in (self._stdout, self._stderr):
            if log is not None:
                log.close()
        return time.monotonic() - self.started

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.close()

    def last_error_line(self) -> str:
        lines = (self.directory / "stderr.log").read_text(errors="replace").strip().splitlines()
        errors = [line for line in lines if line.startswith(("error:", "Error", "Traceback"))]
        tail = [line for line in lines if line.strip()]
        return (errors or tail or ["no output"])[-1][:300]


def read_outcome(directory: Path, constraint: str, limit: float) -> Outcome:
    """Builds the outcome from ``summary.json``; raises ValueError when unusable."""
    path = directory / "summary.json"
    if not path.exists():
        raise ValueError("the trial wrote no summary.json")
    try:
        summary = json.loads(path.read_text())
    except OSError as error:  # Fails the trial; decoding errors are ValueErrors already.
        raise ValueError(f"cannot read summary.json ({error.strerror or error})") from None
    try:
        episode_return = float(summary["eval/episode_return"])
        episode_cost = float(summary["eval/episode_cost"])
        cost_rate = float(summary.get("train/cost_rate", math.nan))
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"summary.json lacks {error}") from None
    constraint_value = float(summary[CONSTRAINTS[constraint]])
    outcome = Outcome(
        episode_return=episode_return,
        episode_cost=episode_cost,
        cost_rate=cost_rate,
        objective=episode_return,
        constraint=constraint_value,
        limit=limit,
        penalty=100.0 * cost_rate + episode_cost - episode_return,
    )
    if not outcome.finite():
        raise ValueError(f"non-finite metrics: {dataclasses.asdict(outcome)}")
    return outcome
