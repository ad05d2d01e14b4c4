"""One tick, end to end: observe → evaluate → plan → guard → apply → record.

The scheduler (`jarvis.loop.scheduler`) calls `Reconciler.tick()` every interval;
`jarvis tick`, `jarvis plan` and `jarvis simulate` call it directly. Decisions
live in policies, the planner, the guard, the retry ledger (`jarvis.loop.ledger`)
and recovery (`jarvis.loop.recovery`); this module only sequences them, and
records every step as an event and counts every outcome through its `Recorder`
(`jarvis.loop.record`). It acts on state read in this tick, never on an older
event payload.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

import anyio
import structlog

from jarvis.actuators.base import Sensor
from jarvis.loop import events as ev
from jarvis.loop.budgets import ChangeLog
from jarvis.loop.dispatch import Dispatcher
from jarvis.loop.killswitch import KillSwitch
from jarvis.loop.ledger import RetryLedger
from jarvis.loop.observe import health_counts, observe_all, transitions
from jarvis.loop.plan import plan_actions
from jarvis.loop.record import HISTORY_EVENTS, HISTORY_KINDS, Recorder, history_horizon
from jarvis.loop.recovery import recover
from jarvis.loop.report import Decision, TickReport
from jarvis.model import (
    Action,
    BlockReason,
    Clock,
    ErrorKind,
    EventKind,
    History,
    KillSwitchState,
    Outcome,
    ResourceRef,
    ResourceState,
    Snapshot,
    Verdict,
)
from jarvis.policies.base import Policy
from jarvis.safety import Guard, GuardContext
from jarvis.store import EventStore
from jarvis.store.history import StoreHistory
from jarvis.telemetry.metrics import Metrics

__all__ = ["Decision", "Reconciler", "TickReport"]

log = structlog.get_logger("jarvis.reconciler")


class Reconciler:
    """Runs ticks. Construct through `jarvis.app.build_app`, then `await start()`."""

    def __init__(
        self,
        *,
        actuators: Sequence[Sensor],
        policies: Sequence[Policy],
        guard: Guard,
        store: EventStore,
        killswitch: KillSwitch,
        clock: Clock,
        metrics: Metrics,
        run_id: str,
        observe_timeout: float = 10.0,
        apply_timeout: float = 20.0,
        dry_run: bool = False,
        history_snapshots: int = 20,
    ) -> None:
        self.actuators = list(actuators)
        self.policies = list(policies)
        self.guard = guard
        self.store = store
        self.killswitch = killswitch
        self.clock = clock
        self.metrics = metrics
        self.run_id = run_id
        self.observe_timeout = observe_timeout
        self.dry_run = dry_run
        self.dispatcher = Dispatcher(self.actuators, apply_timeout=apply_timeout)
        self._snapshots: deque[Snapshot] = deque(maxlen=history_snapshots)
        self.history = StoreHistory(store, kinds=HISTORY_KINDS, size=HISTORY_EVENTS)
        self.ledger = RetryLedger(store, guard.retry)
        self.changes = ChangeLog(guard.budgets)
        self.recorder = Recorder(store, self.history, metrics)
        self._last: dict[str, ResourceState] = {}
        self._stopping = False
        self.last_tick_finished: datetime | None = None
        metrics.known_actuators(a.name for a in self.actuators)
        metrics.known_policies(p.name for p in self.policies)

    # -- lifecycle -----------------------------------------------------------

    async def start(self, *, recover_orphans: bool = True) -> None:
        """Load the retry ledger and history, and close intents a crash left open.

        Only the process that owns the loop closes orphans: a one-shot command
        beside a running daemon would otherwise close the daemon's intent in
        flight as ``action.unknown``.
        """
        now = self.clock.now()
        await self.ledger.load()
        await self.changes.load(self.store, now)
        await self.history.load(now - history_horizon(self.policies))
        for closed in await recover(self.ledger, now) if recover_orphans else []:
            self.recorder.recovered(closed)
        await self._flush()
        self.metrics.quarantined_resources.set(self.ledger.quarantined)

    def request_stop(self, grace: float) -> None:
        """Stop taking new actions; an apply in flight gets ``grace`` seconds at most."""
        self._stopping = True
        self.dispatcher.shorten(grace)

    @property
    def stopping(self) -> bool:
        return self._stopping

    # -- one tick ------------------------------------------------------------

    async def tick(self, *, dry_run: bool | None = None) -> TickReport:
        dry = self.dry_run if dry_run is None else dry_run
        now = self.clock.now()
        tick_id = ev.tick_id_for(now, self.run_id)
        structlog.contextvars.bind_contextvars(tick_id=tick_id)
        try:
            return await self._tick(tick_id, now, dry)
        finally:
            structlog.contextvars.unbind_contextvars("tick_id", "resource")

    async def _tick(self, tick_id: str, now: datetime, dry: bool) -> TickReport:
        rec = self.recorder
        rec.record(ev.tick_event(EventKind.TICK_STARTED, tick_id, now, dry_run=dry))
        await self.ledger.refresh(self._flush)
        await self.changes.refresh(self.store)
        # Read once per tick for the gauge; actions read it again right before applying.
        await self._read_killswitch()
        snapshot = await self._observe(tick_id)
        report = TickReport(tick_id=tick_id, started_at=now, snapshot=snapshot)
        history = History(
            snapshots=tuple(self._snapshots),
            events=self.history.window,
            retries=self.ledger.states,
        )
        proposals = self._evaluate(snapshot, history, report)
        rec.proposed(tick_id, snapshot.taken_at, proposals)
        planned, superseded = plan_actions(proposals)
        for action, verdict in superseded:
            rec.blocked(report, self.clock.now(), action, verdict)
        if planned:
            # Proposals are durable before anything is applied; with nothing to
            # apply, the flush at the end of the tick writes them just as well.
            await self._flush()
        await self._apply_all(planned, snapshot, dry, report)
        self._snapshots.append(snapshot)
        finished = report.finished_at = self.clock.now()
        if self.guard.budgets.budgets:
            remaining = self.guard.budgets.remaining(
                self.changes.current(finished), _fleet(snapshot), finished
            )
            self.metrics.set_budgets(remaining)
        rec.tick_finished(report, finished)
        await self._flush()
        self.last_tick_finished = finished
        self.metrics.last_tick_timestamp.set(finished.timestamp())
        self.metrics.quarantined_resources.set(self.ledger.quarantined)
        return report

    async def _observe(self, tick_id: str) -> Snapshot:
        resources, errors = await observe_all(self.actuators, self.observe_timeout, self.metrics)
        now = self.clock.now()
        self.recorder.observe_failed(tick_id, now, errors)
        for event in transitions(tick_id, now, self._last, resources):
            self.recorder.remember(event)
        self.metrics.set_resources(health_counts(resources))
        return Snapshot(taken_at=now, resources=resources, errors=errors)

    def _evaluate(self, snapshot: Snapshot, history: History, report: TickReport) -> list[Action]:
        proposals: list[Action] = []
        for policy in self.policies:
            try:
                evaluation = policy.evaluate(snapshot, history, snapshot.taken_at)
            except Exception as exc:  # noqa: BLE001 - one policy failing must not stop the others
                self.recorder.policy_failed(report, policy.name, exc)
                continue
            proposals.extend(evaluation.actions)
            for note in evaluation.notes:
                self.recorder.note(report, policy.name, note)
        report.proposals = proposals
        return proposals

    # -- guard and apply -----------------------------------------------------

    async def _apply_all(
        self, planned: Sequence[Action], snapshot: Snapshot, dry: bool, report: TickReport
    ) -> None:
        if not planned:
            return
        try:
            await self._guard_each(planned, snapshot, dry, report)
        except anyio.get_cancelled_exc_class():
            # The tick's deadline cut it short: what was planned and not decided
            # is recorded as blocked (the scheduler flushes it), never dropped.
            decided = {id(d.action) for d in report.decisions}
            cut = Verdict.block(BlockReason.TICK_TIMEOUT, "the tick ran out of time")
            for action in planned:
                if id(action) not in decided:
                    self.recorder.blocked(report, self.clock.now(), action, cut)
            raise

    async def _guard_each(
        self, planned: Sequence[Action], snapshot: Snapshot, dry: bool, report: TickReport
    ) -> None:
        applied = 0
        touched: set[str] = set()
        killswitch = await self._read_killswitch()
        fleet = _fleet(snapshot)
        for action in planned:
            if self._stopping:
                verdict = Verdict.block(BlockReason.SHUTDOWN, "shutting down: no new actions")
                self.recorder.blocked(report, self.clock.now(), action, verdict)
                continue
            now = self.clock.now()
            ctx = GuardContext(
                now=now,
                killswitch=killswitch,
                retry=self.ledger.get(action.key),
                current=snapshot.get(str(action.target)),
                applied_this_tick=applied,
                touched=frozenset(touched),
                dry_run=dry,
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
                killswitch = await self._read_killswitch()
                verdict = self.guard.check(action, replace(ctx, killswitch=killswitch))
            if not verdict.allowed:
                self.recorder.blocked(report, self.clock.now(), action, verdict)
                spent = None
                if verdict.reason is BlockReason.RETRY_BUDGET:
                    spent = self.ledger.exhaust(action.key, ctx.now)
                if spent is not None:
                    self.recorder.escalated(
                        report, ctx.now, action, attempts=spent.attempts, error=spent.reason
                    )
                continue
            touched.add(str(action.target))
            applied += 1
            outcome = await self._apply(action, report)
            report.decisions.append(Decision(action, verdict, outcome))

    async def _read_killswitch(self) -> KillSwitchState:
        state = await self.killswitch.read_failsafe()
        self.metrics.killswitch_engaged.set(1 if state.engaged else 0)
        return state

    async def _apply(self, action: Action, report: TickReport) -> Outcome:
        # One shielded unit: intent, provider call and outcome. A tick timeout or
        # shutdown must not leave an attempt counted and an intent open without
        # the provider ever being called. Store statements and the apply each
        # have their own deadline, so the unit is bounded.
        with anyio.CancelScope(shield=True):
            outcome = await self._apply_unit(action, report)
        return outcome  # noqa: RET504 - outside the scope: mypy reads a scope as able to swallow

    async def _apply_unit(self, action: Action, report: TickReport) -> Outcome:
        tick_id = report.tick_id
        action_id = ev.action_id_for(tick_id, action)
        start = self.clock.now()
        state = self.ledger.attempted(action, start)
        self.changes.note(action, start, action_id)
        # The intent is durable (or spooled) before the provider is called, so a
        # crash between the two leaves a visible, reconcilable `action.started`.
        self.recorder.record(ev.started(tick_id, start, action, action_id))
        await self._flush()
        structlog.contextvars.bind_contextvars(resource=str(action.target))
        outcome = await self.dispatcher.apply(action, ev.idempotency_key(action_id))
        now = self.clock.now()
        self.recorder.outcome(tick_id, now, action, outcome)
        state, escalate = self.ledger.finished(state, outcome, now)
        if escalate:
            terminal = outcome.error_kind is ErrorKind.TERMINAL
            attempts, error = state.consecutive_failures, outcome.detail
            self.recorder.escalated(
                report, now, action, attempts=attempts, error=error, terminal=terminal
            )
        await self._flush()
        return outcome

    async def flush(self) -> None:
        """Write buffered events and retry state (the scheduler calls it on the way out)."""
        await self._flush()

    async def _flush(self) -> None:
        await self.recorder.flush()


def _fleet(snapshot: Snapshot) -> list[ResourceRef]:
    """The resources observed this tick: what a budget's percentage is of."""
    return [state.ref for state in snapshot.resources.values()]
