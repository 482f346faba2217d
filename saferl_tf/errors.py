"""Errors that a user caused and that the launchers report in one line.

Every launcher catches ``UserError`` and prints ``error: <message>`` on stderr,
then exits with ``exit_code`` (2, the conventional code for bad usage), with no
traceback: the message already says what was wrong and what is accepted.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class UserError(Exception):
    """Bad input from the user: an unknown name, a bad value, an unusable file."""

    exit_code = 2


class UnknownNameError(UserError, KeyError):
    """A name (environment, agent, config key, preset) that is not registered."""

    def __str__(self) -> str:  # KeyError would quote the message.
        return str(self.args[0]) if self.args else ""


class ConfigError(UserError, ValueError):
    """A configuration value or file that cannot be used."""


class CheckpointError(UserError):
    """A checkpoint that exists but cannot be restored."""


class NonFiniteError(RuntimeError):
    """A training metric became NaN or infinite; the run stops at once."""

    exit_code = 1


def close_matches(name: str, candidates: Iterable[str], limit: int = 3) -> list[str]:
    """Returns up to ``limit`` candidates that look like ``name``."""
    candidates = list(candidates)
    lowered = {candidate.lower(): candidate for candidate in candidates}
    matches = difflib.get_close_matches(name.lower(), list(lowered), n=limit, cutoff=0.6)
    return [lowered[match] for match in matches]


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """A ' (did you mean a, b?)' suffix, or '' when nothing is close."""
    matches = close_matches(name, candidates)
    return f" (did you mean {', '.join(matches)}?)" if matches else ""
