"""Clocks: the wall clock for the daemon, a virtual one for tests and simulation.

Both satisfy `jarvis.model.Clock`. The scheduler, the reconciler and the
simulated fleet read time only through a clock, so tests and `jarvis simulate`
run the real loop in virtual time with no real sleeping. What paces and ages
ticks is the clock's `monotonic`, so a step of the wall clock neither stalls
the loop nor fakes an overrun (`VirtualClock.jump` steps only `now`).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import anyio
import anyio.lowlevel


class WallClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(max(0.0, seconds))


class VirtualClock:
    """Time that moves only when someone sleeps or calls `advance`.

    `sleep` advances time at once and yields to other tasks, so a loop that
    sleeps 30 s per tick runs thousands of ticks a second.
    """

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
        self._elapsed = 0.0

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        """Seconds advanced since the start; unlike `now`, a `jump` does not move it.

        What `time.monotonic` is to the wall clock: the simulation's electors
        and lease table (`jarvis.simulation.replicas`) measure deadlines on it.
        """
        return self._elapsed

    def advance(self, seconds: float) -> None:
        if seconds > 0:
            # Both move by the same whole microseconds, as `now` can: a pace measured on
            # `monotonic` then lands on the very instants one measured on `now` did.
            step = timedelta(seconds=seconds)
            self._now += step
            self._elapsed += step.total_seconds()

    def jump(self, to: datetime) -> None:
        """Set the time outright (forwards or backwards): a clock jump."""
        self._now = to

    async def sleep(self, seconds: float) -> None:
        self.advance(seconds)
        await anyio.lowlevel.checkpoint()
