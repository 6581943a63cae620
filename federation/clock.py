"""Time as a dependency. Code whose behaviour depends on the date takes a `Clock`, so tests control days."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the Unix epoch."""
        ...


class SystemClock:
    def now(self) -> float:
        return time.time()


class FakeClock:
    """A clock that only moves when told to; for tests and simulations."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self._now = start

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += seconds


def utc_day(timestamp: float) -> str:
    """The UTC calendar day of `timestamp` as YYYY-MM-DD."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")
