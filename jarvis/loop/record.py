"""Recording: every step of a tick as an event, and every outcome as a count.

The reconciler (`jarvis.loop.reconciler`) hands each step to its `Recorder`,
which builds the event (`jarvis.loop.events`), buffers it in the event store,
adds the kinds policies read (`HISTORY_KINDS`) to their history window
(`jarvis.store.history`) and the alerts policies raise to `policy_alerts`
(`History.alerts`), and counts it in the metrics. Flushes go through here too, so written and
spooled events are counted in one place. No decisions are made here.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

import structlog

from jarvis.loop import events as ev
from jarvis.loop.recovery import Recovered
from jarvis.loop.report import Decision, TickReport
from jarvis.loop.unknowns import Confirmed
from jarvis.model import (
    JSON,
    Action,
    Event,
    EventKind,
    Metric,
    Outcome,
    OutcomeStatus,
    ResourceState,
    Verdict,
)
from jarvis.policies.base import Note
from jarvis.store import EventStore
from jarvis.store.history import StoreHistory
from jarvis.telemetry.metrics import Metrics
from jarvis.text import one_line

log = structlog.get_logger("jarvis.reconciler")

#: Event kinds policies may read as history (see `History.events`).
HISTORY_KINDS = (
    EventKind.RESOURCE_CHANGED,
    EventKind.ACTION_APPLIED,
    EventKind.ACTION_FAILED,
    EventKind.ACTION_UNKNOWN,
    EventKind.ACTION_ESCALATED,
    EventKind.ACTION_BLOCKED,
)
HISTORY_EVENTS = 5000
HISTORY_HORIZON = timedelta(hours=24)
"""How far back history is loaded at start unless a policy states a longer
``history_horizon`` (see `jarvis.model.EventHistory`)."""


_OUTCOME_LOGS = {
    OutcomeStatus.OK: "action applied",
    OutcomeStatus.FAILED: "action failed",
    OutcomeStatus.TIMED_OUT: "action outcome unknown",
}
_GONE_LOG = "action target not found: deleted since observed; not retried, not escalated"

ALERTS_KEPT = 1000
"""How many of the latest alerts the loop reads at start (breakers and SLOs restore from
them), and how many policies' alerts it keeps for `History.alerts`."""


def history_horizon(policies: Iterable[object]) -> timedelta:
    """The longest ``history_horizon`` a policy states, and never less than the default."""
    return max([HISTORY_HORIZON, *_stated_horizons(policies)])


def reads_events(policies: Iterable[object]) -> bool:
    """Whether any policy reads `History.events`, which it says by stating a horizon.

    Only then is the window loaded at start: `jarvis plan` with no such policy
    enabled reads none of the up to `HISTORY_EVENTS` events.
    """
    return bool(_stated_horizons(policies))


def _stated_horizons(policies: Iterable[object]) -> list[timedelta]:
    stated = (getattr(policy, "history_horizon", None) for policy in policies)
    return [horizon for horizon in stated if isinstance(horizon, timedelta)]


class Recorder:
    """Buffers, remembers and counts the loop's events; see the module docstring."""

    def __init__(self, store: EventStore, history: StoreHistory, metrics: Metrics) -> None:
        self.store = store
        self.history = history
        self.metrics = metrics
        self._dead_letters = 0
        self.identity: Mapping[str, JSON] | None = None
        """``replica`` and ``epoch`` while this process leads: added to every event's payload."""
        self._sampled_hour: datetime | None = None
        self._alerts: deque[Event] = deque(maxlen=ALERTS_KEPT)
        self._frozen_alerts: tuple[Event, ...] | None = ()

    @property
    def policy_alerts(self) -> tuple[Event, ...]:
        """The alerts policies raised, oldest first: those `restore_alerts` found, then ours."""
        if self._frozen_alerts is None:
            self._frozen_alerts = tuple(self._alerts)
        return self._frozen_alerts

    def restore_alerts(self, alerts: Iterable[Event]) -> None:
        """Start `policy_alerts` from the recorded alerts (oldest first) policies raised.

        What a policy told a human before a restart is in the store, not in
        the snapshots it keeps: without these it would tell them again.
        """
        self._alerts.clear()
        self._alerts.extend(event for event in alerts if event.policy)
        self._frozen_alerts = None

    def record(self, event: Event) -> None:
        if self.identity is not None:
            event = replace(event, payload={**event.payload, **self.identity})
        self.store.append([event])

    def remember(self, event: Event) -> None:
        """Record an event policies also see as history from the next tick on."""
        self.record(event)
        self.history.append(event)

    async def flush(self, now: datetime) -> None:
        waiting = self.store.spooled
        result = await self.store.flush()
        if result.dead_letters:
            self.dead_letters(now, result.dead_letters)
        if result.written:
            self.metrics.events_written.inc(result.written)
        # What waited, less what was replayed before the failure, is still waiting.
        added = result.spooled - max(0, waiting - result.replayed) if result.spooled else 0
        if added > 0:
            self.metrics.events_spooled.inc(added)
            # Why, in the store's one line: refused credentials are no network outage.
            log.warning(
                "event store unreachable; events spooled",
                waiting=result.spooled,
                reason=self.store.write_error,
            )
        elif result.replayed:
            log.info("event store back; spooled events replayed", replayed=result.replayed)

    def dead_letters(self, now: datetime, count: int) -> None:
        """Spool lines set aside unreadable: counted, logged and raised as an alert event.

        The alert joins the buffer and is written by the next flush.
        """
        self.metrics.spool_dead_letters.inc(count)
        self._dead_letters += count
        where = self.store.dead_letter_path
        log.error("damaged spool lines set aside", count=count, dead_letter_file=where)
        self.record(ev.spool_dead_letters(now, count, self._dead_letters, where))

    def recovered(self, closed: Recovered) -> None:
        """An orphaned intent closed at start; its escalation joins the history too.

        Otherwise the window would lack an escalation the store holds, and
        `StoreHistory` would not look for it there (it trusts its window).
        """
        for event in closed.events:
            if event.kind in HISTORY_KINDS:
                self.remember(event)
            else:
                self.record(event)
        intent = closed.intent
        outcome = "applied" if closed.applied else "unknown"
        self.metrics.actions.labels(kind=intent.action_kind or "unknown", outcome=outcome).inc()
        (log.info if closed.applied else log.warning)(
            "orphaned intent closed",
            action_id=intent.action_id,
            resource=intent.resource,
            outcome=outcome,
        )
        if closed.escalated:
            self.metrics.escalations.inc()

    def confirmed(self, closed: Confirmed) -> None:
        """An intent closed as unknown, its change since proven made by the provider.

        Its action was counted once already, as unknown, in ``jarvis_actions_total``: the
        proof goes to a counter of its own, since a counter cannot move a count from one
        outcome to another and a second count would make one action two.
        """
        intent = closed.intent
        self.remember(closed.event)
        kind = intent.action_kind or "unknown"
        self.metrics.unknown_resolved.labels(kind=kind, outcome="applied").inc()
        log.info(
            "unknown outcome confirmed applied",
            action_id=intent.action_id,
            resource=intent.resource,
            counted_success=closed.state is not None,
        )

    def sample(self, tick_id: str, now: datetime, resources: Mapping[str, ResourceState]) -> None:
        """At the first tick of each hour, one `metrics.sampled` of every resource's traffic.

        Metrics are left out of `resource.changed` (they move every tick), so
        without this sample nothing records a service's request rate; hourly
        keeps it to 24 small rows a day. An hour with no traffic reported is
        not marked sampled, so a later tick in it may still sample.
        """
        hour = now.replace(minute=0, second=0, microsecond=0)
        if hour == self._sampled_hour:
            return
        rpm: dict[str, JSON] = {
            uri: round(state.metrics[Metric.REQUESTS_PER_MINUTE], 1)
            for uri, state in sorted(resources.items())
            if Metric.REQUESTS_PER_MINUTE in state.metrics
        }
        if rpm:
            self._sampled_hour = hour
            self.record(ev.metrics_sampled(tick_id, now, rpm))

    def observe_failed(self, tick_id: str, now: datetime, errors: Mapping[str, str]) -> None:
        for name, error in sorted(errors.items()):
            self.metrics.observe_errors.labels(actuator=name).inc()
            self.record(ev.observe_failed(tick_id, now, name, error, None))
            log.warning("observe failed", actuator=name, error=one_line(error))

    def proposed(self, tick_id: str, now: datetime, proposals: Sequence[Action]) -> None:
        for action in proposals:
            self.record(ev.proposed(tick_id, now, action))
            self.metrics.actions.labels(kind=action.kind, outcome="proposed").inc()

    def note(self, report: TickReport, policy: str, note: Note) -> None:
        report.notes.append((policy, note))
        event = ev.note_event(report.tick_id, report.snapshot.taken_at, policy, note)
        self.record(event)
        if note.alert:
            self._alerts.append(event)
            self._frozen_alerts = None

    def policy_failed(self, report: TickReport, policy: str, exc: Exception) -> None:
        log.exception("policy failed", policy=policy)
        self.metrics.policy_failures.labels(policy=policy).inc()
        message = f"policy {policy} failed: {exc!r}"
        self.note(report, policy, Note(message=message, alert=True, key="error"))

    def blocked(self, report: TickReport, now: datetime, action: Action, verdict: Verdict) -> None:
        self.remember(ev.blocked(report.tick_id, now, action, verdict))
        reason = verdict.reason.value if verdict.reason else "unknown"
        self.metrics.actions.labels(kind=action.kind, outcome="blocked").inc()
        self.metrics.actions_blocked.labels(reason=reason).inc()
        report.decisions.append(Decision(action, verdict))

    def outcome(self, tick_id: str, now: datetime, action: Action, outcome: Outcome) -> None:
        action_id = ev.action_id_for(tick_id, action)
        self.remember(ev.outcome_event(tick_id, now, action, action_id, outcome))
        label = "applied" if outcome.ok else "gone" if outcome.gone else outcome.status.value
        self.metrics.actions.labels(kind=action.kind, outcome=label).inc()
        # A failure is what an operator greps the log for: warning, not info.
        (log.info if outcome.ok else log.warning)(
            _GONE_LOG if outcome.gone else _OUTCOME_LOGS[outcome.status],
            resource=str(action.target),
            action=action.kind,
            outcome=outcome.status.value,
            detail=one_line(outcome.detail),
        )

    def escalated(
        self,
        report: TickReport,
        now: datetime,
        action: Action,
        *,
        attempts: int,
        error: str,
        terminal: bool = False,
    ) -> None:
        tick_id = report.tick_id
        action_id = ev.action_id_for(tick_id, action)
        event = ev.escalated(
            tick_id, now, action, action_id, attempts=attempts, error=error, terminal=terminal
        )
        self.remember(event)
        self.metrics.escalations.inc()
        report.escalations.append(str(action.target))
        log.error(
            "escalated: a terminal error" if terminal else "escalated: retry budget exhausted",
            resource=str(action.target),
            attempts=attempts,
        )

    def tick_finished(self, report: TickReport, finished: datetime) -> None:
        decisions = report.decisions
        self.record(
            ev.tick_event(
                EventKind.TICK_FINISHED,
                report.tick_id,
                finished,
                resources=len(report.snapshot.resources),
                observe_errors=len(report.snapshot.errors),
                proposed=len(report.proposals),
                applied=len(report.applied),
                blocked=sum(1 for d in decisions if not d.verdict.allowed),
                failed=sum(1 for d in decisions if d.outcome and not d.outcome.ok),
                duration_seconds=round((finished - report.started_at).total_seconds(), 6),
            )
        )
