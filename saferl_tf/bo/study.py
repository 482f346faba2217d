"""A study's state on disk: every point asked, its status and its outcome.

``study.json`` in the study folder is rewritten (atomically) whenever a trial
starts or ends, so a killed tuner resumes without repeating finished trials;
trials that were running when it died are run again (a training trial then
resumes from its own checkpoint).

A folder or file that cannot be written (permissions, a full disk) and a
``study.json`` that cannot be read are one-line ``UserError``s naming the path;
the study on disk is left as it was, and an unreadable one is never
overwritten.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shlex
from pathlib import Path
from typing import Any

from saferl_tf import files
from saferl_tf.errors import ConfigError, UserError

PENDING, RUNNING, DONE, FAILED = "pending", "running", "done", "failed"
STUDY_FILE = "study.json"
_RESUME = "free disk space or fix the permissions, then run the same command again to resume"


def make_folder(directory: Path) -> None:
    """The study's folders; a failure names the folder and what to do."""
    files.make_folder(
        directory, "choose another --study_dir, or fix the permissions or free disk space"
    )


def write_atomically(path: Path, text: str) -> None:
    """Study files, whole or not at all (``saferl_tf.files.write_atomically``)."""
    files.write_atomically(path, text, _RESUME)


@dataclasses.dataclass
class Outcome:
    """What a trial measured, and the numbers the proposers use.

    ``objective`` is maximized; a trial is feasible when ``constraint <=
    limit``. ``penalty`` (minimized) is the seed's folded objective
    100 * cost_rate + episode_cost - episode_return.
    """

    episode_return: float
    episode_cost: float
    cost_rate: float
    objective: float
    constraint: float
    limit: float
    penalty: float

    @property
    def feasible(self) -> bool:
        return self.constraint <= self.limit

    def finite(self) -> bool:
        return all(math.isfinite(v) for v in dataclasses.asdict(self).values())


@dataclasses.dataclass
class Trial:
    index: int
    unit_point: list[float]
    params: dict[str, Any]
    status: str = PENDING
    source: str = "design"  # 'design' or the proposer's name.
    outcome: Outcome | None = None
    error: str | None = None
    started: float | None = None
    duration: float | None = None  # Seconds the trial process ran.
    propose_seconds: float = 0.0  # Tuner time spent choosing this point.

    @property
    def directory_name(self) -> str:
        return f"trial_{self.index}"

    def to_json(self) -> dict:
        data = dataclasses.asdict(self)
        data["feasible"] = self.outcome.feasible if self.outcome else None
        return data

    @classmethod
    def from_json(cls, data: dict) -> Trial:
        data = dict(data)
        data.pop("feasible", None)
        outcome = data.pop("outcome", None)
        return cls(**data, outcome=Outcome(**outcome) if outcome else None)


class Study:
    """The trials of one study and the settings that define it."""

    def __init__(self, directory: str | Path, settings: dict[str, Any]):
        self.directory = Path(directory)
        self.settings = settings
        self.trials: list[Trial] = []
        self.wall_seconds = 0.0

    @property
    def path(self) -> Path:
        return self.directory / STUDY_FILE

    def save(self) -> None:
        data = {
            "settings": self.settings,
            "wall_seconds": self.wall_seconds,
            "trials": [trial.to_json() for trial in self.trials],
        }
        text = json.dumps(data, indent=2) + "\n"  # Before touching the disk.
        make_folder(self.directory)
        write_atomically(self.path, text)

    @classmethod
    def load(cls, directory: str | Path) -> Study | None:
        """The study in ``directory``; None when there is none. A ``study.json``
        that cannot be read is a UserError, and the file is left as it is."""
        path = Path(directory) / STUDY_FILE
        if not path.exists():
            return None
        try:
            raw = path.read_bytes()
        except OSError as error:
            raise UserError(
                f"cannot read {path} ({files.reason(error)}); fix its permissions, or move "
                "it aside to start a new study in that folder"
            ) from None
        try:
            data = json.loads(raw)  # Decoding errors are ValueErrors too.
            study = cls(directory, dict(data["settings"]))
            study.wall_seconds = float(data.get("wall_seconds", 0.0))
            study.trials = [Trial.from_json(t) for t in data["trials"]]
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            reason = (str(error).splitlines() or [type(error).__name__])[0][:200]
            raise ConfigError(
                f"{path} is not a study this tuner can read ({type(error).__name__}: {reason}); "
                f"it was left as it is: move it aside (mv {shlex.quote(str(path))} "
                f"{shlex.quote(str(path) + '.bad')}) to start a new "
                "study in that folder, or choose another --study_dir"
            ) from None
        return study

    def with_status(self, *statuses: str) -> list[Trial]:
        return [trial for trial in self.trials if trial.status in statuses]

    def best_feasible(self) -> Trial | None:
        feasible = [t for t in self.with_status(DONE) if t.outcome.feasible]
        return max(feasible, key=lambda t: t.outcome.objective, default=None)

    def best_penalty(self) -> Trial | None:
        return min(self.with_status(DONE), key=lambda t: t.outcome.penalty, default=None)
