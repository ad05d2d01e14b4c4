"""One tick, end to end: observe → evaluate → plan → guard → apply → record.

The scheduler (`jarvis.loop.scheduler`) calls `Reconciler.tick()` every interval;
`jarvis tick`, `jarvis plan` and `jarvis simulate` call it directly. Decisions
live in policies and the guard; this module only sequences them, records every
step as an event, and counts every outcome. It acts on state read in this tick,
never on an older event payload.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import anyio
import structlog

from jarvis.actuators.base import Actuator, ActuatorError
from jarvis.loop import events as ev
from jarvis.loop.killswitch import KillSwitch
from jarvis.loop.plan import plan_actions
from jarvis.model import (
    Action,
    BlockReason,
    Clock,
    ErrorKind,
    Event,
    EventKind,
    History,
    KillSwitchState,
    Outcome,
    ResourceState,
    RetryState,
    Snapshot,
    Verdict,
)
from jarvis.policies.base import Note, Policy
from jarvis.safety import Guard, GuardContext
from jarvis.store import EventStore
from jarvis.telemetry.metrics import Metrics

log = structlog.get_logger("jarvis.reconciler")

#: Event kinds policies may read as history (see `History.events`).
HISTORY_KINDS = (
    EventKind.RESOURCE_CHANGED,
    EventKind.ACTION_APPLIED,
    EventKind.ACTION_FAILED,
    EventKind.ACTION_ESCALATED,
    EventKind.ACTION_BLOCKED,
)
HISTORY_EVENTS = 5000
HISTORY_HORIZON = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class Decision:
    """What became of one planned action in a tick."""

    action: Action
    verdict: Verdict
    outcome: Outcome | None = None


@dataclass(slots=True)
class TickReport:
    tick_id: str
    started_at: datetime
    snapshot: Snapshot
    proposals: list[Action] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    notes: list[tuple[str, Note]] = field(default_factory=list)
    escalations: list[str] = field(default_factory=list)
    finished_at: datetime | None = None

    @property
    def applied(self) -> list[Decision]:
        return [d for d in self.decisions if d.outcome is not None and d.outcome.ok]


class Reconciler:
    """Runs ticks. Construct through `jarvis.app.build_app`, then `await start()`."""

    def __init__(
        self,
        *,
        actuators: Sequence[Actuator],
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
        self.apply_timeout = apply_timeout
        self.dry_run = dry_run
        # Observe-only actuators (probes, cost) own no action kinds and never
        # receive an action, even when they share a provider name.
        self._by_provider = {a.provider: a for a in self.actuators if a.action_kinds}
        self._snapshots: deque[Snapshot] = deque(maxlen=history_snapshots)
        self._history: deque[Event] = deque(maxlen=HISTORY_EVENTS)
        self._last: dict[str, ResourceState] = {}
        self._retries: dict[tuple[str, str], RetryState] = {}
        self._stopping = False
        self._apply_scope: anyio.CancelScope | None = None
        self.last_tick_finished: datetime | None = None
        metrics.known_actuators(a.name for a in self.actuators)

    # -- lifecycle -----------------------------------------------------------

    async def start(self) -> None:
        """Load the retry ledger and history, and close intents a crash left open."""
        now = self.clock.now()
        self._retries = await self.store.load_retries()
        recent = await self.store.events(
            limit=HISTORY_EVENTS,
            kinds=[k.value for k in HISTORY_KINDS],
            since=now - HISTORY_HORIZON,
        )
        self._history.extend(recent)
        for intent in await self.store.open_intents():
            await self._close_orphan(intent, now)
        await self._flush()
        self._update_quarantine_gauge()

    async def _close_orphan(self, intent: Event, now: datetime) -> None:
        unknown = ev.unknown_outcome(intent, now)
        self._record(unknown)
        self.metrics.actions.labels(kind=intent.action_kind or "unknown", outcome="unknown").inc()
        key = (intent.resource or "", intent.action_kind or "")
        state = self._retries.get(key) or RetryState(resource=key[0], action_kind=key[1])
        if intent.ts not in state.attempts:
            state = replace(state, attempts=(*state.attempts, intent.ts))
        state, escalate = self.guard.retry.finished(
            state, Outcome.failure("outcome unknown: the process ended mid-apply"), now
        )
        self._stage_retry(state)
        log.warning("orphaned intent closed", action_id=intent.action_id, resource=intent.resource)
        if escalate:
            self._escalate_orphan(intent, state, now)

    def _escalate_orphan(self, intent: Event, state: RetryState, now: datetime) -> None:
        self._record(
            Event(
                kind=EventKind.ACTION_ESCALATED,
                ts=now,
                idempotency_key=f"{intent.action_id}:escalated",
                tick_id=intent.tick_id,
                resource=intent.resource,
                action_kind=intent.action_kind,
                policy=intent.policy,
                reason=f"{state.consecutive_failures} failed attempts; quarantined",
                payload={"attempts": state.consecutive_failures, "last_error": state.last_error},
                action_id=intent.action_id,
            )
        )
        self.metrics.escalations.inc()

    def request_stop(self, grace: float) -> None:
        """Stop taking new actions; an apply in flight gets ``grace`` seconds at most."""
        self._stopping = True
        scope = self._apply_scope
        if scope is not None:
            scope.deadline = min(scope.deadline, anyio.current_time() + grace)

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
        self._record(ev.tick_event(EventKind.TICK_STARTED, tick_id, now, dry_run=dry))
        await self._refresh_retries()
        # Read once per tick for the gauge; actions read it again right before applying.
        killswitch = await self.killswitch.read_failsafe()
        self.metrics.killswitch_engaged.set(1 if killswitch.engaged else 0)
        snapshot = await self._observe(tick_id)
        report = TickReport(tick_id=tick_id, started_at=now, snapshot=snapshot)
        history = History(
            snapshots=tuple(self._snapshots), events=tuple(self._history), retries=self._retries
        )
        proposals = self._evaluate(snapshot, history, report)
        for action in proposals:
            self._record(ev.proposed(tick_id, snapshot.taken_at, action))
            self.metrics.actions.labels(kind=action.kind, outcome="proposed").inc()
        planned, superseded = plan_actions(proposals)
        for action, verdict in superseded:
            self._block(tick_id, action, verdict, report)
        if planned:
            # Proposals are durable before anything is applied; with nothing to
            # apply, the flush at the end of the tick writes them just as well.
            await self._flush()
        await self._apply_all(tick_id, planned, snapshot, dry, report)
        self._snapshots.append(snapshot)
        finished = self.clock.now()
        report.finished_at = finished
        self._record(
            ev.tick_event(
                EventKind.TICK_FINISHED,
                tick_id,
                finished,
                resources=len(snapshot.resources),
                observe_errors=len(snapshot.errors),
                proposed=len(proposals),
                applied=len(report.applied),
                blocked=sum(1 for d in report.decisions if not d.verdict.allowed),
                failed=sum(1 for d in report.decisions if d.outcome and not d.outcome.ok),
                duration_seconds=round((finished - now).total_seconds(), 6),
            )
        )
        await self._flush()
        self.last_tick_finished = finished
        self.metrics.last_tick_timestamp.set(finished.timestamp())
        self._update_quarantine_gauge()
        return report

    async def _refresh_retries(self) -> None:
        # The ledger is re-read every tick so `jarvis retries reset` from another
        # process takes effect; when the store is down the in-memory one stands.
        # Retry states staged during an outage (there is a spool then) are
        # written first, so the re-read is never older than this process's own.
        if self.store.spooled:
            await self._flush()
            if self.store.spooled:
                return
        try:
            self._retries = await self.store.load_retries()
        except Exception as exc:  # noqa: BLE001 - a store outage must not stop the tick
            log.warning("retry ledger unreadable; using the in-memory copy", error=str(exc))

    # -- observe -------------------------------------------------------------

    async def _observe(self, tick_id: str) -> Snapshot:
        results: dict[str, Sequence[ResourceState]] = {}
        errors: dict[str, str] = {}

        async def observe_one(actuator: Actuator) -> None:
            started = anyio.current_time()
            try:
                with anyio.fail_after(self.observe_timeout):
                    results[actuator.name] = await actuator.observe()
            except TimeoutError:
                errors[actuator.name] = f"observe timed out after {self.observe_timeout:g}s"
            except ActuatorError as exc:
                errors[actuator.name] = f"{exc.code}: {exc}" if exc.code else str(exc)
            except Exception as exc:  # noqa: BLE001 - one provider failing must not stop the others
                errors[actuator.name] = f"{type(exc).__name__}: {exc}"
            finally:
                self.metrics.observe_duration.labels(actuator=actuator.name).observe(
                    anyio.current_time() - started
                )

        async with anyio.create_task_group() as group:
            for actuator in self.actuators:
                group.start_soon(observe_one, actuator)

        now = self.clock.now()
        resources: dict[str, ResourceState] = {}
        for actuator in self.actuators:
            for state in results.get(actuator.name, ()):
                resources[str(state.ref)] = state
        for name, error in sorted(errors.items()):
            self.metrics.observe_errors.labels(actuator=name).inc()
            self._record(ev.observe_failed(tick_id, now, name, error, None))
            log.warning("observe failed", actuator=name, error=error)
        self._record_transitions(tick_id, now, resources)
        counts: dict[tuple[str, str], int] = {}
        for state in resources.values():
            label = (state.ref.provider, state.health.value)
            counts[label] = counts.get(label, 0) + 1
        self.metrics.set_resources(counts)
        return Snapshot(taken_at=now, resources=resources, errors=errors)

    def _record_transitions(
        self, tick_id: str, now: datetime, resources: dict[str, ResourceState]
    ) -> None:
        last = self._last
        for uri, state in resources.items():
            previous = last.get(uri)
            if previous is None or previous.transition_key() != state.transition_key():
                event = ev.resource_changed(tick_id, now, state, previous)
                self._record(event)
                self._history.append(event)
            last[uri] = state

    # -- evaluate ------------------------------------------------------------

    def _evaluate(self, snapshot: Snapshot, history: History, report: TickReport) -> list[Action]:
        proposals: list[Action] = []
        for policy in self.policies:
            try:
                evaluation = policy.evaluate(snapshot, history, snapshot.taken_at)
            except Exception as exc:
                log.exception("policy failed", policy=policy.name)
                note = Note(
                    message=f"policy {policy.name} failed: {exc!r}", alert=True, key="error"
                )
                self._note(report, policy.name, note)
                continue
            proposals.extend(evaluation.actions)
            for note in evaluation.notes:
                self._note(report, policy.name, note)
        report.proposals = proposals
        return proposals

    def _note(self, report: TickReport, policy: str, note: Note) -> None:
        report.notes.append((policy, note))
        self._record(ev.note_event(report.tick_id, report.snapshot.taken_at, policy, note))

    # -- guard and apply -----------------------------------------------------

    async def _apply_all(
        self,
        tick_id: str,
        planned: Sequence[Action],
        snapshot: Snapshot,
        dry: bool,
        report: TickReport,
    ) -> None:
        applied = 0
        touched: set[str] = set()
        if not planned:
            return
        killswitch = await self._read_killswitch()
        for action in planned:
            if self._stopping:
                verdict = Verdict.block(BlockReason.SHUTDOWN, "shutting down: no new actions")
                self._block(tick_id, action, verdict, report)
                continue
            ctx = GuardContext(
                now=self.clock.now(),
                killswitch=killswitch,
                retry=self._retries.get(action.key),
                current=snapshot.get(str(action.target)),
                applied_this_tick=applied,
                touched=frozenset(touched),
                dry_run=dry,
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
                self._block(tick_id, action, verdict, report)
                if verdict.reason is BlockReason.RETRY_BUDGET:
                    self._escalate_if_exhausted(tick_id, action, ctx.now, report)
                continue
            touched.add(str(action.target))
            applied += 1
            outcome = await self._apply(tick_id, action, report)
            report.decisions.append(Decision(action, verdict, outcome))

    def _escalate_if_exhausted(
        self, tick_id: str, action: Action, now: datetime, report: TickReport
    ) -> None:
        state = self._retries.get(action.key)
        if state is None or not self.guard.retry.exhausted(state, now):
            return
        attempts = len(self.guard.retry.in_window(state, now))
        reason = f"{attempts} attempts in the window did not fix it"
        self._stage_retry(self.guard.retry.quarantine(state, now, reason))
        self._escalation(tick_id, now, action, attempts=attempts, error=reason, report=report)

    def _escalation(
        self,
        tick_id: str,
        now: datetime,
        action: Action,
        *,
        attempts: int,
        error: str,
        report: TickReport,
    ) -> None:
        action_id = ev.action_id_for(tick_id, action)
        event = ev.escalated(tick_id, now, action, action_id, attempts=attempts, error=error)
        self._record(event)
        self._history.append(event)
        self.metrics.escalations.inc()
        report.escalations.append(str(action.target))
        log.error(
            "escalated: retry budget exhausted", resource=str(action.target), attempts=attempts
        )

    async def _read_killswitch(self) -> KillSwitchState:
        state = await self.killswitch.read_failsafe()
        self.metrics.killswitch_engaged.set(1 if state.engaged else 0)
        return state

    def _block(self, tick_id: str, action: Action, verdict: Verdict, report: TickReport) -> None:
        event = ev.blocked(tick_id, self.clock.now(), action, verdict)
        self._record(event)
        self._history.append(event)
        reason = verdict.reason.value if verdict.reason else "unknown"
        self.metrics.actions.labels(kind=action.kind, outcome="blocked").inc()
        self.metrics.actions_blocked.labels(reason=reason).inc()
        report.decisions.append(Decision(action, verdict))

    async def _apply(self, tick_id: str, action: Action, report: TickReport) -> Outcome:
        action_id = ev.action_id_for(tick_id, action)
        start = self.clock.now()
        state = self.guard.retry.attempted(
            self._retries.get(action.key), str(action.target), action.kind, start
        )
        self._stage_retry(state)
        # The intent is durable (or spooled) before the provider is called, so a
        # crash between the two leaves a visible, reconcilable `action.started`.
        self._record(ev.started(tick_id, start, action, action_id))
        await self._flush()
        structlog.contextvars.bind_contextvars(resource=str(action.target))
        outcome = await self._call_actuator(action, ev.idempotency_key(action_id))
        now = self.clock.now()
        event = ev.outcome_event(tick_id, now, action, action_id, outcome)
        self._record(event)
        self._history.append(event)
        self.metrics.actions.labels(kind=action.kind, outcome=_outcome_label(outcome)).inc()
        state, escalate = self.guard.retry.finished(state, outcome, now)
        self._stage_retry(state)
        log.info(
            "action applied" if outcome.ok else "action failed",
            action=action.kind,
            outcome=outcome.status.value,
            detail=outcome.detail,
        )
        if escalate:
            self._escalation(
                tick_id,
                now,
                action,
                attempts=state.consecutive_failures,
                error=outcome.detail,
                report=report,
            )
        await self._flush()
        return outcome

    async def _call_actuator(self, action: Action, key: str) -> Outcome:
        actuator = self._by_provider.get(action.target.provider)
        if actuator is None:
            return Outcome.failure(
                f"no actuator for provider {action.target.provider!r}", kind=ErrorKind.TERMINAL
            )
        if action.kind not in actuator.action_kinds:
            return Outcome.failure(
                f"actuator {actuator.name} cannot {action.kind}", kind=ErrorKind.TERMINAL
            )
        # Shielded: shutdown or a tick timeout must not cut a provider call in
        # half; the scope's own deadline bounds it (shortened by request_stop).
        with anyio.CancelScope(shield=True) as scope:
            scope.deadline = anyio.current_time() + self.apply_timeout
            self._apply_scope = scope
            try:
                outcome = await actuator.apply(action, key)
            except ActuatorError as exc:
                outcome = exc.outcome()
            except Exception as exc:
                log.exception("actuator raised", actuator=actuator.name)
                outcome = Outcome.failure(f"{type(exc).__name__}: {exc}")
            finally:
                self._apply_scope = None
        if scope.cancelled_caught:
            return Outcome.timed_out(f"apply did not finish within {self.apply_timeout:g}s")
        return outcome

    # -- recording -----------------------------------------------------------

    def _record(self, event: Event) -> None:
        self.store.append([event])

    def _stage_retry(self, state: RetryState) -> None:
        self._retries[(state.resource, state.action_kind)] = state
        self.store.stage_retry(state)

    async def flush(self) -> None:
        """Write buffered events and retry state (the scheduler calls it on the way out)."""
        await self._flush()

    async def _flush(self) -> None:
        waiting = self.store.spooled
        result = await self.store.flush()
        if result.written:
            self.metrics.events_written.inc(result.written)
        if result.spooled > waiting:
            self.metrics.events_spooled.inc(result.spooled - waiting)
            log.warning("event store unreachable; events spooled", waiting=result.spooled)
        elif result.replayed:
            log.info("event store back; spooled events replayed", replayed=result.replayed)

    def _update_quarantine_gauge(self) -> None:
        quarantined = {s.resource for s in self._retries.values() if s.quarantined}
        self.metrics.quarantined_resources.set(len(quarantined))


def _outcome_label(outcome: Outcome) -> str:
    if outcome.ok:
        return "applied"
    return outcome.status.value
