"""The constrained hyperparameter tuner: a study of trials, each a training run.

``Tuner(...).run()`` asks points (an initial Sobol or Latin-hypercube design,
then Bayesian optimization), runs up to ``workers`` trials at once through an
executor (``saferl_tf.distributed``: child processes here, the default, or
Ray tasks on a cluster), proposing the next point as soon as a trial ends,
with the running ones as pending points; records every outcome in
``study.json`` and prints a live table.
At the end it writes the best feasible configuration as ``best_config.yaml``,
which ``launchers/train.py --config=<study>/best_config.yaml`` accepts.

Killing the tuner and starting it again with the same settings resumes the
study: finished trials are kept, interrupted ones are run again (training
trials resume from their own checkpoints). A trial that crashes or reports
non-finite metrics is recorded as failed and the study goes on.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import yaml

from saferl_tf import files
from saferl_tf.bo import proposers as proposers_lib
from saferl_tf.bo.space import SearchSpace
from saferl_tf.bo.study import DONE, FAILED, PENDING, RUNNING, Study, Trial, write_atomically
from saferl_tf.bo.trials import TrialSpec, read_outcome
from saferl_tf.distributed import JobResult, LocalExecutor, ProgressBoard
from saferl_tf.errors import ConfigError

BEST_CONFIG = "best_config.yaml"


@dataclasses.dataclass
class TunerSettings:
    """What defines a study (``identity``) and how it is run (the rest)."""

    study_dir: str
    space: str  # name:low:high[:log][:int],...
    trials: int = 30
    initial: int = 8
    design: str = "sobol"
    backend: str = "trieste"
    objective: str = "constrained"  # or 'penalty'
    constraint: str = "episode_cost"  # or 'cost_rate'
    cost_limit: float = 25.0
    workers: int = 1
    seed: int = 0
    poll_seconds: float = 0.2

    def identity(self, spec: TrialSpec) -> dict:
        """The settings a resumed study must share with the one on disk."""
        return {
            "space": self.space,
            "design": self.design,
            "initial": self.initial,
            "backend": self.backend,
            "objective": self.objective,
            "constraint": self.constraint,
            "cost_limit": self.cost_limit,
            "seed": self.seed,
            "trial": dataclasses.asdict(spec) | {"imports": list(spec.imports),
                                                  "train_args": list(spec.train_args)},
        }  # fmt: skip


class Tuner:
    """``executor``: where trials run (default: ``settings.workers`` child
    processes); the tuner keeps as many trials running as it has slots."""

    def __init__(self, settings: TunerSettings, spec: TrialSpec, out=sys.stdout, executor=None):
        self.space = self.check(settings)
        self.settings = settings
        self.spec = spec
        self.out = out
        self.executor = executor
        self.proposer = proposers_lib.make_proposer(
            settings.backend, settings.objective, self.space.dimension, settings.seed
        )
        self.study = self._open_study()
        self._design = self.space.design(
            max(settings.initial, settings.trials), settings.design, settings.seed
        )

    @staticmethod
    def check(settings: TunerSettings) -> SearchSpace:
        """Checks ``settings`` without touching the study; returns the parsed space.
        Raises ConfigError (one line) for a bad value."""
        if settings.trials < 1 or settings.workers < 1 or settings.initial < 1:
            raise ConfigError("--trials, --workers and --initial must be positive integers")
        if settings.backend not in proposers_lib.BACKENDS:
            accepted = ", ".join(proposers_lib.BACKENDS)
            raise ConfigError(f"unknown backend {settings.backend!r}; accepted: {accepted}")
        if settings.objective not in proposers_lib.OBJECTIVES:
            raise ConfigError(
                f"unknown objective {settings.objective!r}; "
                f"accepted: {', '.join(proposers_lib.OBJECTIVES)}"
            )
        return SearchSpace.parse(settings.space)

    def _open_study(self) -> Study:
        identity = self.settings.identity(self.spec)
        study = Study.load(self.settings.study_dir)
        if study is None:
            study = Study(self.settings.study_dir, identity)
            study.save()
            return study
        differing = sorted(k for k in set(identity) | set(study.settings)
                           if identity.get(k) != study.settings.get(k))  # fmt: skip
        if differing:
            raise ConfigError(
                f"{self.settings.study_dir} holds a study with different settings "
                f"({', '.join(differing)}); resume it with its own settings or choose another "
                "--study_dir"
            )
        interrupted = study.with_status(RUNNING, PENDING)
        for trial in interrupted:
            trial.status = PENDING
        finished = len(study.with_status(DONE, FAILED))
        print(
            f"resuming {study.path}: {finished} finished trials kept, "
            f"{len(interrupted)} interrupted trials to run again",
            file=self.out,
            flush=True,
        )
        return study

    # --- Proposals -----------------------------------------------------------

    def _propose(self, index: int) -> Trial:
        started = time.perf_counter()
        done = self.study.with_status(DONE)
        running = self.study.with_status(RUNNING)
        if index < self.settings.initial or len(done) < 2:
            # The initial design (or, before two trials have finished, its
            # continuation): a GP needs data first.
            point, source = self._design[index % len(self._design)], self.settings.design
        else:
            points = np.asarray([t.unit_point for t in done])
            pending = np.asarray([t.unit_point for t in running]).reshape(-1, self.space.dimension)
            try:
                point = self.proposer.propose(points, [t.outcome for t in done], pending)
                source = self.proposer.name
            except Exception as error:  # A numerical failure must not end the study.
                reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
                print(
                    f"warning: {self.proposer.name} could not propose trial {index} ({reason}); "
                    f"it takes the next {self.settings.design} point instead",
                    file=self.out,
                    flush=True,
                )
                point = self._design[index % len(self._design)]
                source = f"{self.settings.design}-fallback"
        params = self.space.decode(point)
        return Trial(
            index=index,
            unit_point=[float(u) for u in point],
            params=params,
            source=source,
            propose_seconds=time.perf_counter() - started,
        )

    def _next_trial(self) -> Trial | None:
        pending = self.study.with_status(PENDING)
        if pending:
            return pending[0]
        if len(self.study.trials) >= self.settings.trials:
            return None
        trial = self._propose(len(self.study.trials))
        self.study.trials.append(trial)
        return trial

    # --- The loop ------------------------------------------------------------

    def run(self) -> Study:
        executor = self.executor
        try:
            study_dir = files.make_folder(self.settings.study_dir, "choose another --study_dir")
            with files.exclusive_lock(study_dir, "study", "choose another --study_dir"):
                executor = executor or LocalExecutor(study_dir, self.settings.workers)
                return self._run(executor)
        finally:
            if executor is not None:
                executor.close()  # Interrupted trials checkpoint, to be rerun on resume.

    def _run(self, executor) -> Study:
        started = time.monotonic()
        wall_before = self.study.wall_seconds
        board = ProgressBoard(self.out, total=self.settings.trials, what="trials")
        board.count_finished(len(self.study.with_status(DONE)), len(self.study.with_status(FAILED)))
        self._print_header()
        try:
            while True:
                while executor.free_slots() > 0:
                    trial = self._next_trial()
                    if trial is None:
                        break
                    trial.status, trial.started = RUNNING, time.time()
                    self.study.save()
                    executor.submit(self.spec.job(trial))
                if not executor.running():
                    break
                for result in executor.wait(self.settings.poll_seconds):
                    self._record(result)
                    board.finished(result)
                    self.study.wall_seconds = wall_before + time.monotonic() - started
                    self.study.save()
                board.show(executor, len(self.study.with_status(PENDING)))
        finally:
            self.study.wall_seconds = wall_before + time.monotonic() - started
            self.study.save()
        self._finish()
        return self.study

    def _record(self, result: JobResult) -> None:
        trial = next(t for t in self.study.trials if t.directory_name == result.job.name)
        trial.duration = result.seconds
        try:
            if not result.ok:
                raise ValueError(f"exit code {result.returncode}: {result.error}")
            trial.outcome = read_outcome(
                Path(self.settings.study_dir) / trial.directory_name,
                self.settings.constraint,
                self.settings.cost_limit,
            )
            trial.status, trial.error = DONE, None
        except ValueError as error:
            trial.status, trial.error = FAILED, str(error)
        self._print_row(trial)

    # --- Output ----------------------------------------------------------------

    def _print_header(self) -> None:
        names = " ".join(f"{name[:12]:>12}" for name in self.space.names)
        print(
            f"{'trial':>5} {'source':>18} {names} {'return':>10} {'cost':>9} "
            f"{'feasible':>8} {'best':>10} {'seconds':>8}",
            file=self.out,
            flush=True,
        )

    def _print_row(self, trial: Trial) -> None:
        values = " ".join(f"{_short(trial.params[name]):>12}" for name in self.space.names)
        if trial.outcome is None:
            result = f"{'failed: ' + (trial.error or '')[:60]}"
        else:
            best = self.study.best_feasible()
            best_text = _short(best.outcome.objective) if best else "-"
            result = (
                f"{_short(trial.outcome.objective):>10} {_short(trial.outcome.constraint):>9} "
                f"{'yes' if trial.outcome.feasible else 'no':>8} {best_text:>10} "
                f"{trial.duration:8.1f}"
            )
        print(
            f"{trial.index:>5} {trial.source[:18]:>18} {values} {result}", file=self.out, flush=True
        )

    def _finish(self) -> None:
        done = self.study.with_status(DONE)
        failed = self.study.with_status(FAILED)
        best = self.study.best_feasible()
        print(
            f"study {self.study.path}: {len(done)} trials done, {len(failed)} failed",
            file=self.out,
        )
        if best is None:
            print("no feasible trial yet: no best configuration written", file=self.out)
            return
        path = Path(self.settings.study_dir) / BEST_CONFIG
        values = dict(best.params)
        if self.spec.agent:
            values = {"agent": self.spec.agent, **values}
        header = (
            f"# Best feasible trial {best.index} of {self.study.path}: objective "
            f"{best.outcome.objective:.6g}, constraint {best.outcome.constraint:.6g} <= "
            f"{best.outcome.limit:g}.\n"
        )
        if self.spec.base_config:
            header += f"# Trials also used --config={self.spec.base_config}.\n"
        write_atomically(path, header + yaml.safe_dump(values, sort_keys=False))
        print(
            f"best feasible: trial {best.index} {best.params} objective "
            f"{best.outcome.objective:.6g}; config written to {path}",
            file=self.out,
            flush=True,
        )


def _short(value) -> str:
    if isinstance(value, int | np.integer):
        return str(int(value))
    return f"{float(value):.4g}"
