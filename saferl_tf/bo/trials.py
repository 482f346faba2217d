"""Trials as jobs, and reading back their outcomes.

A training trial is ``launchers/train.py`` with the trial's parameters as a
config file, in ``<study>/trial_<i>/``; a synthetic trial is
``python -m saferl_tf.bo.synthetic``. ``TrialSpec.job`` makes either an
executor's job (``saferl_tf.distributed``: child processes here, or Ray
tasks). Either writes ``summary.json``, from which ``read_outcome`` builds an
``Outcome``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import yaml

from saferl_tf.bo.study import Outcome, Trial
from saferl_tf.distributed.jobs import RUN_DIR, Job

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

    def job(self, trial: Trial) -> Job:
        """The trial as an executor's job: its program, folder and parameters file."""
        values = dict(trial.params)
        if self.agent:
            values["agent"] = self.agent  # Read back (and skipped) by --config.
        params = f"{RUN_DIR}/params.yaml"
        if self.synthetic:
            args = [
                "saferl_tf.bo.synthetic", f"--problem={self.synthetic}", f"--params={params}",
                f"--output={RUN_DIR}/summary.json", f"--sleep={self.synthetic_sleep}",
            ]  # fmt: skip
        else:
            config = ",".join(part for part in (self.base_config, params) if part)
            args = [
                "saferl_tf.cli.train",  # Also from an installed wheel.
                f"--agent={self.agent}", f"--env={self.env}", f"--config={config}",
                f"--run_dir={RUN_DIR}", f"--total_steps={self.trial_steps}",
                f"--eval_every={self.trial_steps}", f"--eval_episodes={self.eval_episodes}",
                f"--checkpoint_every={max(self.trial_steps // 4, 1)}",
                f"--seed={self.seed}", "--safety" if self.safety else "--nosafety",
                "--noprogress",
            ]  # fmt: skip
            if self.imports:
                args.append(f"--imports={','.join(self.imports)}")
            args += list(self.train_args)
        return Job(
            name=trial.directory_name,
            folder=trial.directory_name,
            module_args=tuple(args),
            files=(("params.yaml", yaml.safe_dump(values, sort_keys=False)),),
        )


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
