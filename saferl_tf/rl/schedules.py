"""MBPO's linear schedules over epochs: [min epoch, max epoch, min value, max
value] gives the min value up to the min epoch, the max value from the max
epoch on, and a straight line between (rollout lengths, the model's share of
SAC batches)."""

from __future__ import annotations

from collections.abc import Sequence


def linear_schedule(epoch: int, schedule: Sequence[float]) -> float:
    """The schedule's value at ``epoch``."""
    low_epoch, high_epoch, low, high = schedule
    if epoch <= low_epoch:
        return float(low)
    progress = min(1.0, (epoch - low_epoch) / max(high_epoch - low_epoch, 1))
    return float(low + progress * (high - low))


def schedule_length(epoch: int, schedule: Sequence[float]) -> int:
    """A length from the schedule, truncated to an integer (as MBPO's code)."""
    return int(linear_schedule(epoch, schedule))
