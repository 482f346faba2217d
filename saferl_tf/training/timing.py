"""Wall time of an update's phases, logged as ``time/<phase>`` metrics."""

from __future__ import annotations

import contextlib
import time


class PhaseTimer:
    """``with timer("name"):`` adds the block's wall time (s) to ``metrics`` as
    ``time/name``; a phase entered again in the same update adds up."""

    def __init__(self, metrics: dict):
        self.metrics = metrics

    @contextlib.contextmanager
    def __call__(self, name: str):
        started = time.perf_counter()
        try:
            yield
        finally:
            key = f"time/{name}"
            self.metrics[key] = self.metrics.get(key, 0.0) + time.perf_counter() - started
