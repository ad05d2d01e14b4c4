"""The scheduler: paces ticks on interval boundaries, with jitter, a per-tick
timeout, no stacking of overruns, and a graceful stop.

`jarvis run` starts one `Scheduler` beside the HTTP server; tests and the
simulation drive it on a `VirtualClock`. Boundaries are fixed multiples of the
interval from the first tick: a tick that overruns its boundary is counted in
`jarvis_tick_overruns_total`, and the next tick starts on the next boundary
still ahead, never immediately and never twice. Boundaries and ages are
measured on the clock's `monotonic`, never on `now`: a step of the wall clock
(NTP, a resumed VM, a hand-set date) neither holds a tick back for the hour it
stepped back nor counts the day it stepped forward as skipped boundaries.

The simulation (`jarvis.simulation.harness`) runs this same scheduler with
`TickHooks`: injecting faults before a tick, checking invariants after it, and
ending the run by returning False from either. The one-shot commands (`jarvis
tick`, `plan`, the overrides) run their one tick through `bounded_tick`, the
scheduler's own bound, so a cron of `jarvis tick` keeps to ``loop.tick_timeout``
as the daemon does and records what the bound cut off the same way.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

import anyio
import structlog

from jarvis.loop.reconciler import Reconciler, TickReport
from jarvis.loop.shutdown import Shutdown
from jarvis.model import Clock
from jarvis.store import LeaseLostError
from jarvis.store.errors import said
from jarvis.telemetry.metrics import Metrics

log = structlog.get_logger("jarvis.scheduler")

TickOutcome = Literal["ok", "failed", "timed_out"]


@dataclass(frozen=True, slots=True)
class TickResult:
    """One tick as the scheduler saw it: how it ended and, if it finished, its report."""

    outcome: TickOutcome
    report: TickReport | None
    error: Exception | None = None
    """What a failed tick raised (logged and counted here; a driver may re-raise it)."""


class TickHooks(Protocol):
    """What a driver (the simulation) does around each tick; False from either ends the run.

    Ending this way is not `Scheduler.stop`: no shutdown is requested of the
    reconciler, the loop just takes no further tick and flushes.
    """

    async def before_tick(self, now: datetime) -> bool: ...

    async def after_tick(self, result: TickResult) -> bool: ...


class Gate(Protocol):
    """Whether this process may tick now (`jarvis.loop.election.Leadership`).

    A replica that does not lead skips its ticks (it observes nothing) and
    stays healthy; a tick whose fenced write is refused reports it with `lost`.
    """

    @property
    def leading(self) -> bool: ...

    async def ready(self) -> bool: ...

    async def lost(self, why: str) -> None: ...


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
        hooks: TickHooks | None = None,
        gate: Gate | None = None,
    ) -> None:
        self.reconciler = reconciler
        self.clock = clock
        self.metrics = metrics
        self.interval = interval
        # Exported so an alert on a stalled loop can measure by it, as `healthy` does.
        metrics.loop_interval.set(interval)
        self.jitter = jitter
        self.tick_timeout = tick_timeout or interval
        self.shutdown_grace = shutdown_grace
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self.hooks = hooks
        self.gate = gate
        self.ticks = 0
        self.overruns = 0
        self.timed_out = 0
        self.failed = 0
        self.started_at: float | None = None
        """`Clock.monotonic` when `run` began."""
        self._stop = anyio.Event()
        self._woken = False
        self._sleep_scope: anyio.CancelScope | None = None

    @property
    def shutdown(self) -> Shutdown:
        """The deadline `stop` sets: the tick in flight and every wait after it end by it."""
        return self.reconciler.shutdown

    def stop(self) -> None:
        """Stop after the tick in flight; it and all that follows get the shutdown grace at
        most."""
        if self._stop.is_set():
            return
        self._stop.set()
        # Brings the tick in flight, its apply and every later wait in (`shutdown`).
        self.reconciler.request_stop(self.shutdown_grace)
        if self._sleep_scope is not None:
            self._sleep_scope.cancel()

    def wake(self) -> None:
        """Tick now rather than at the next boundary (a replica just elected leader, an
        override queued); during a tick, the next one starts as soon as it ends."""
        self._woken = True
        if self._sleep_scope is not None:
            self._sleep_scope.cancel()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def healthy(self) -> tuple[bool, str]:
        """A tick finished within the last three intervals (or we just started, or just
        took the lead); a follower, which does not tick, is healthy. Measured on the
        monotonic clock, so a step of the wall clock neither hides a stall nor fakes one."""
        now = self.clock.monotonic()
        limit = 3 * self.interval
        if self.gate is not None and not self.gate.leading:
            return True, "following: another replica leads"
        last = self.reconciler.last_tick_finished
        if last is not None:
            age = now - last
            return age <= limit, f"last tick finished {age:.1f}s ago"
        began = self.reconciler.leading_since
        if began is None:  # not `or`: a monotonic reading may be 0.0 (a VirtualClock's start)
            began = self.started_at
        if began is not None and now - began <= limit:
            return True, "starting: no tick finished yet"
        return False, "no tick has finished"

    async def run(self, *, max_ticks: int | None = None) -> None:
        """Tick until `stop()` (or ``max_ticks``); returns once events are flushed."""
        origin = self.started_at = self.clock.monotonic()
        boundary = 0
        while not self._stop.is_set() and (max_ticks is None or self.ticks < max_ticks):
            delay = origin + boundary * self.interval - self.clock.monotonic()
            delay += self.jitter * self.interval * self.rng.random()
            if delay > 0 and not self._woken:
                with anyio.CancelScope() as self._sleep_scope:
                    await self.clock.sleep(delay)
                self._sleep_scope = None
                if self._stop.is_set():
                    break
            self._woken = False
            if self.hooks is not None and not await self.hooks.before_tick(self.clock.now()):
                break
            if self.gate is not None and not await self._ready(self.gate):
                # A follower: no tick, no observation; ask again on the next boundary.
                boundary = self._next_boundary(boundary, origin, self.clock.monotonic())
                continue
            started = self.clock.monotonic()
            result = await self._one_tick()
            boundary = self._next_boundary(boundary, origin, started)
            if self.hooks is not None and not await self.hooks.after_tick(result):
                break
        await self._settle()

    def _next_boundary(self, boundary: int, origin: float, started: float) -> int:
        """The next boundary still ahead of now; skipping any is an overrun, counted.
        ``origin`` and ``started`` are `Clock.monotonic` readings."""
        finished = self.clock.monotonic()
        elapsed = finished - origin
        next_boundary = max(boundary + 1, math.floor(elapsed / self.interval) + 1)
        if next_boundary > boundary + 1:
            self.overruns += 1
            self.metrics.tick_overruns.inc()
            log.warning(
                "tick overran its interval",
                seconds=finished - started,
                skipped_boundaries=next_boundary - boundary - 1,
            )
        return next_boundary

    async def _one_tick(self) -> TickResult:
        started = self.clock.monotonic()
        outcome: TickOutcome = "ok"
        report: TickReport | None = None
        error: Exception | None = None
        try:
            report = await bounded_tick(self.reconciler, self.tick_timeout)
        except LeaseLostError as exc:
            outcome = "failed"
            error = exc
            self.failed += 1
            why = said(exc)
            log.warning("lease lost mid-tick: nothing more is applied", error=why)
            if self.gate is not None:
                await self.gate.lost(why)
        except Exception as exc:
            outcome = "failed"
            error = exc
            self.failed += 1
            log.exception("tick failed")
        else:
            if report is None:
                outcome = "timed_out"
                self.timed_out += 1
        self.ticks += 1
        self.metrics.ticked(outcome)
        self.metrics.tick_duration.observe(self.clock.monotonic() - started)
        return TickResult(outcome, report, error)

    async def _ready(self, gate: Gate) -> bool:
        """Whether ``gate`` lets this process tick; taking the lead waits on the database,
        which the shutdown deadline cuts (then no tick)."""
        with self.shutdown.bound():
            return await gate.ready()
        return False  # cut short by the shutdown deadline

    async def _settle(self) -> None:
        """The last flush: a few seconds at most, a little past the shutdown deadline
        (`Shutdown.settling`); what is left then, the daemon spools."""
        with self.shutdown.settling(SETTLE):
            await self.reconciler.flush()


SETTLE = 5.0
"""Seconds at most the flush after a cut tick waits (never past the shutdown deadline)."""


async def bounded_tick(
    reconciler: Reconciler, tick_timeout: float, *, dry_run: bool | None = None
) -> TickReport | None:
    """One tick of ``reconciler`` cut at ``tick_timeout`` seconds (or the shutdown deadline);
    None when it was cut. What it raises is the caller's.

    The scheduler ticks through it, and so do the one-shot commands: one bound, one
    record of a cut tick. What the cut stops is recorded by the tick itself: an apply
    in flight runs on as one shielded unit to its own deadline (``action.unknown`` if
    its provider stays silent), the actions planned and not reached are blocked
    ``tick_timeout`` (`Reconciler._apply_all`), and no ``tick.finished`` is written.
    That record is flushed here, for a few seconds at most, never past the shutdown
    deadline: what the flush leaves stays buffered for the caller's last flush or spool.
    """
    # The deadline is the event loop's time, not the reconciler's clock: a virtual
    # clock never blocks, so in virtual time only a real hang can reach it.
    shutdown = reconciler.shutdown
    with shutdown.bound(tick_timeout):
        return await reconciler.tick(dry_run=dry_run)
    if reconciler.stopping:
        log.warning("tick cut short by the shutdown")
    else:
        log.error("tick timed out", timeout=tick_timeout)
    with shutdown.bound(SETTLE, shield=True):
        await reconciler.flush()
    return None
