"""The tick's guard → apply step: each planned action judged, then applied if it may be.

The reconciler (`jarvis.loop.reconciler`) hands `Gate.pass_through` what the
planner kept. Each action is first held back if this replica must not act on it
at all (shutting down, another shard's), then judged by the guard on what this
tick read. Only an action the rest of the guard lets through has the kill switch
read again right before it is applied (and, with shards, the other replicas'
intents); an action blocked anyway is judged on the tick's last read. What is
allowed is applied as one shielded unit (`jarvis.loop.apply.Applier`). Every
verdict and outcome is recorded on the tick's report; an exhausted retry budget
escalates. A tick cut short by its deadline records what it had not decided as
blocked, never dropped.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

import anyio

from jarvis.loop.apply import Applier
from jarvis.loop.breakers import Breakers
from jarvis.loop.budgets import ChangeLog
from jarvis.loop.ledger import RetryLedger, still_broken
from jarvis.loop.peers import tick_window
from jarvis.loop.record import Recorder
from jarvis.loop.report import Decision, TickReport
from jarvis.model import (
    Action,
    BlockReason,
    Clock,
    KillSwitchState,
    ResourceRef,
    Snapshot,
    Verdict,
)
from jarvis.safety import Guard, GuardContext
from jarvis.store import EventStore

__all__ = ["Gate"]


class Gate:
    """Guards each planned action and applies what survives, recording every decision."""

    def __init__(
        self,
        *,
        guard: Guard,
        clock: Clock,
        store: EventStore,
        ledger: RetryLedger,
        recorder: Recorder,
        breakers: Breakers,
        changes: ChangeLog,
        applier: Applier,
        killswitch: Callable[[], Awaitable[KillSwitchState]],
        held_back: Callable[[Action], Verdict | None],
        fleet_window: timedelta | None,
    ) -> None:
        self.guard = guard
        self.clock = clock
        self.store = store
        self.ledger = ledger
        self.recorder = recorder
        self.breakers = breakers
        self.changes = changes
        self.applier = applier
        self.killswitch = killswitch
        """A fail-safe read of the kill switch (unreadable: engaged)."""
        self.held_back = held_back
        """Why this replica must not act on an action at all now (before the guard); None:
        it may."""
        self.fleet_window = fleet_window
        """With shards, the loop interval: the per-tick bound counts every replica's intents."""

    async def pass_through(
        self,
        planned: Sequence[Action],
        snapshot: Snapshot,
        fleet: Sequence[ResourceRef],
        dry: bool,
        report: TickReport,
    ) -> None:
        """Guard and apply ``planned`` in order; ``fleet`` is what a budget's percentage is of."""
        if not planned:
            return
        try:
            await self._each(planned, snapshot, fleet, dry, report)
        except anyio.get_cancelled_exc_class():
            # The tick's deadline cut it short: what was planned and not decided
            # is recorded as blocked (the scheduler flushes it), never dropped.
            decided = {id(d.action) for d in report.decisions}
            cut = Verdict.block(BlockReason.TICK_TIMEOUT, "the tick ran out of time")
            for action in planned:
                if id(action) not in decided:
                    self.recorder.blocked(report, self.clock.now(), action, cut)
            raise

    async def _each(
        self,
        planned: Sequence[Action],
        snapshot: Snapshot,
        fleet: Sequence[ResourceRef],
        dry: bool,
        report: TickReport,
    ) -> None:
        applied = 0
        touched: set[str] = set()
        killswitch = await self.killswitch()
        for action in planned:
            held_back = self.held_back(action)
            if held_back is not None:
                self.recorder.blocked(report, self.clock.now(), action, held_back)
                continue
            now = self.clock.now()
            ctx = GuardContext(
                now=now,
                killswitch=killswitch,
                retry=self.ledger.get(action.key),
                current=snapshot.get(str(action.target)),
                applied_this_tick=self._applied(applied, now),
                touched=frozenset(touched),
                dry_run=dry,
                held=self.breakers.hold(action, self.clock.now()),
                changes=self.changes.current(now),
                fleet=fleet,
            )
            verdict = self.guard.check(action, ctx)
            if verdict.allowed or verdict.reason is BlockReason.DRY_RUN:
                # Only an action the rest of the guard lets through needs the switch
                # read fresh, right before it is applied; an action blocked anyway
                # is judged on the last read of this tick, which saves a round trip
                # per blocked action. An engaged last read blocks the rest of the
                # tick without reading again: a release mid-tick waits a tick.
                # With shards the other replicas' intents are read again too.
                killswitch = await self.killswitch()
                fresh = replace(ctx, killswitch=killswitch)
                if self.fleet_window is not None:
                    await self.changes.refresh(self.store)
                    fresh = replace(
                        fresh,
                        applied_this_tick=self._applied(applied, now),
                        changes=self.changes.current(now),
                    )
                verdict = self.guard.check(action, fresh)
            if not verdict.allowed:
                self.recorder.blocked(report, self.clock.now(), action, verdict)
                spent = None
                if verdict.reason is BlockReason.RETRY_BUDGET:
                    broken = still_broken(ctx.current)
                    spent = self.ledger.exhaust(action.key, ctx.now, broken=broken)
                if spent is not None:
                    self.recorder.escalated(
                        report, ctx.now, action, attempts=spent.attempts, error=spent.reason
                    )
                continue
            outcome = await self.applier.apply(action, report, fleet)
            # Not sent: the intent was not written (store, fleet cap), or the kill switch
            # engaged while it was and closed it (`Outcome.withheld`).
            if isinstance(outcome, Verdict):
                self.recorder.blocked(report, self.clock.now(), action, outcome)
                continue
            touched.add(str(action.target))
            applied += 1
            report.decisions.append(Decision(action, verdict, outcome))

    def _applied(self, applied: int, now: datetime) -> int:
        """What the per-tick bound compares: this tick's, or with shards every replica's
        intents in the current tick window (`jarvis.loop.peers.tick_window`)."""
        if self.fleet_window is None:
            return applied
        return self.changes.started_since(tick_window(now, self.fleet_window))
