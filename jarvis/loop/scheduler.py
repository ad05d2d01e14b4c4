"""The scheduler: paces ticks on interval boundaries, with jitter, a per-tick
timeout, no stacking of overruns, and a graceful stop.

`jarvis run` starts one `Scheduler` beside the HTTP server; tests and the
simulation drive it on a `VirtualClock`. Boundaries are fixed multiples of the
interval from the first tick: a tick that overruns its boundary is counted in
`jarvis_tick_overruns_total`, and the next tick starts on the next boundary
still ahead, never immediately and never twice.
"""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta

import anyio
import structlog

from jarvis.loop.reconciler import Reconciler
from jarvis.model import Clock
from jarvis.telemetry.metrics import Metrics

log = structlog.get_logger("jarvis.scheduler")


class Scheduler:
    def __init__(
        self,
        reconciler: Reconciler,
        clock: Clock,
        metrics: Metrics,
        *,
        interval: float,
        jitter: float = 0.0,
        tick_timeout: float | None = None,
        shutdown_grace: float = 8.0,
        rng: random.Random | None = None,
    ) -> None:
        self.reconciler = reconciler
        self.clock = clock
        self.metrics = metrics
        self.interval = interval
        self.jitter = jitter
        self.tick_timeout = tick_timeout or interval
        self.shutdown_grace = shutdown_grace
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self.ticks = 0
        self.overruns = 0
        self.started_at: datetime | None = None
        self._stop = anyio.Event()
        self._sleep_scope: anyio.CancelScope | None = None
        self._tick_scope: anyio.CancelScope | None = None

    def stop(self) -> None:
        """Stop after the tick in flight; its apply gets the shutdown grace at most."""
        if self._stop.is_set():
            return
        self._stop.set()
        self.reconciler.request_stop(self.shutdown_grace)
        if self._sleep_scope is not None:
            self._sleep_scope.cancel()
        if self._tick_scope is not None:
            self._tick_scope.deadline = min(
                self._tick_scope.deadline, anyio.current_time() + self.shutdown_grace
            )

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def healthy(self) -> tuple[bool, str]:
        """A tick finished within the last three intervals (or we just started)."""
        now = self.clock.now()
        limit = timedelta(seconds=3 * self.interval)
        last = self.reconciler.last_tick_finished
        if last is not None:
            age = (now - last).total_seconds()
            return now - last <= limit, f"last tick finished {age:.1f}s ago"
        if self.started_at is not None and now - self.started_at <= limit:
            return True, "starting: no tick finished yet"
        return False, "no tick has finished"

    async def run(self, *, max_ticks: int | None = None) -> None:
        """Tick until `stop()` (or ``max_ticks``); returns once events are flushed."""
        origin = self.clock.now()
        self.started_at = origin
        boundary = 0
        while not self._stop.is_set() and (max_ticks is None or self.ticks < max_ticks):
            due = origin + timedelta(seconds=boundary * self.interval)
            delay = (due - self.clock.now()).total_seconds()
            delay += self.jitter * self.interval * self.rng.random()
            if delay > 0:
                with anyio.CancelScope() as self._sleep_scope:
                    await self.clock.sleep(delay)
                self._sleep_scope = None
                if self._stop.is_set():
                    break
            started = self.clock.now()
            await self._one_tick()
            finished = self.clock.now()
            elapsed = (finished - origin).total_seconds()
            next_boundary = max(boundary + 1, math.floor(elapsed / self.interval) + 1)
            if next_boundary > boundary + 1:
                skipped = next_boundary - boundary - 1
                self.overruns += 1
                self.metrics.tick_overruns.inc()
                log.warning(
                    "tick overran its interval",
                    seconds=(finished - started).total_seconds(),
                    skipped_boundaries=skipped,
                )
            boundary = next_boundary
        await self._settle()

    async def _one_tick(self) -> None:
        started = self.clock.now()
        outcome = "ok"
        with anyio.CancelScope() as scope:
            scope.deadline = anyio.current_time() + self.tick_timeout
            self._tick_scope = scope
            try:
                await self.reconciler.tick()
            except Exception:
                outcome = "failed"
                log.exception("tick failed")
        self._tick_scope = None
        if scope.cancelled_caught:
            outcome = "timed_out"
            log.error("tick timed out", timeout=self.tick_timeout)
            await self._settle()
        self.ticks += 1
        self.metrics.ticks.labels(outcome=outcome).inc()
        self.metrics.tick_duration.observe((self.clock.now() - started).total_seconds())

    async def _settle(self) -> None:
        """Flush what a cut-short tick buffered; never longer than a few seconds."""
        with anyio.CancelScope(shield=True), anyio.move_on_after(5):
            await self.reconciler.flush()
