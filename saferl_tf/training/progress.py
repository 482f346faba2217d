"""Progress output: a tqdm bar on a terminal, a plain line every N seconds otherwise."""

from __future__ import annotations

import sys
import time


class Progress:
    """Shows steps done, speed, the last episode's return and cost."""

    def __init__(self, total: int, initial: int = 0, enabled: bool = True, interval: float = 30.0):
        self.total = total
        self.steps = initial
        self.enabled = enabled
        self._postfix: dict[str, str] = {}
        self._bar = None
        self._interval = interval
        self._start_time = self._last_print = time.monotonic()
        self._start_steps = initial
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm

            self._bar = tqdm(
                total=total, initial=initial, unit="step", dynamic_ncols=True, mininterval=0.5
            )

    def update(self, steps: int) -> None:
        if not self.enabled:
            return
        self.steps += steps
        if self._bar is not None:
            self._bar.update(steps)
            return
        now = time.monotonic()
        if now - self._last_print >= self._interval:
            self._last_print = now
            self._print_line(now)

    def _print_line(self, now: float) -> None:
        rate = (self.steps - self._start_steps) / max(now - self._start_time, 1e-9)
        parts = [f"step {self.steps}/{self.total}", f"{rate:.0f} steps/s"]
        parts += [f"{k} {v}" for k, v in self._postfix.items()]
        print(" | ".join(parts), file=sys.stderr, flush=True)

    def status(self, text: str | None) -> None:
        """Shows what the run is doing between steps (an update round), or clears it."""
        if not self.enabled:
            return
        if text is None:
            self._postfix.pop("doing", None)
        else:
            self._postfix["doing"] = text
        if self._bar is not None:
            self._bar.set_postfix(self._postfix, refresh=True)
            return
        now = time.monotonic()
        if text is not None and now - self._last_print >= self._interval:
            self._last_print = now
            self._print_line(now)

    def set(self, **values: float) -> None:
        self._postfix.update({k: f"{v:.3g}" for k, v in values.items()})
        if self._bar is not None:
            self._bar.set_postfix(self._postfix, refresh=False)

    def write(self, message: str) -> None:
        if self._bar is not None:
            self._bar.write(message, file=sys.stderr)
        else:
            print(message, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        elif self.enabled:
            self._print_line(time.monotonic())
