"""Time for tests. The engine never reads the wall clock: callers pass `now`.

Replay and rule tests use FakeClock and move it by hand, so no test ever
sleeps to wait for a window.
"""

from __future__ import annotations


class FakeClock:
    """A clock that only moves when told to."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> float:
        if seconds < 0:
            raise ValueError("a clock does not go backwards")
        self._now += seconds
        return self._now

    def set(self, when: float) -> None:
        if when < self._now:
            raise ValueError("a clock does not go backwards")
        self._now = when
