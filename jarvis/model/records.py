"""What is recorded and remembered: events, the retry ledger, the kill switch, history.

Every step of a tick becomes an `Event` in the event store; `RetryState` and
`KillSwitchState` are the safety state the guard reads; `History` is what
policies may know besides the snapshot, and `Clock` where time comes from.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from jarvis.model.actions import BlockReason, ErrorKind
from jarvis.model.resources import JSON, Snapshot
from jarvis.model.slots import slot_init


class EventKind(enum.StrEnum):
    """The kinds of event in the append-only event store."""

    TICK_STARTED = "tick.started"
    TICK_FINISHED = "tick.finished"
    RESOURCE_CHANGED = "resource.changed"
    OBSERVE_FAILED = "observe.failed"
    ACTION_PROPOSED = "action.proposed"
    ACTION_BLOCKED = "action.blocked"
    ACTION_STARTED = "action.started"
    ACTION_APPLIED = "action.applied"
    ACTION_FAILED = "action.failed"
    ACTION_UNKNOWN = "action.unknown"
    ACTION_ESCALATED = "action.escalated"
    KILLSWITCH_ENGAGED = "killswitch.engaged"
    KILLSWITCH_RELEASED = "killswitch.released"
    ADMIN_REQUEST = "admin.request"
    RETRIES_RESET = "retries.reset"
    POLICY_NOTE = "policy.note"
    ALERT = "alert"
    SILENCE_ADDED = "silence.added"
    SILENCE_EXPIRED = "silence.expired"
    REPORT_SENT = "report.sent"
    METRICS_SAMPLED = "metrics.sampled"
    BILLING_SUBSCRIPTION = "billing.subscription"
    """A Stripe subscription webhook changed a customer's plan or status (by customer id)."""
    BILLING_INVOICE = "billing.invoice"
    """A Stripe invoice webhook: a payment failed, or an invoice was paid."""


WITHHOLDING = frozenset({BlockReason.KILLSWITCH.value})
"""The block reasons that may stop an action after its intent is durable (`Event.withheld`)."""


MAX_REASON_CHARS = 500
"""The longest reason an operator may give (a kill-switch flip, an override, a silence),
on every surface: the CLI, the admin API and the status page. Enough for a sentence, not
a document: a reason is repeated in events, notifications, the page and `jarvis status`."""


def reason_too_long(reason: str) -> str | None:
    """Why ``reason`` is refused, ``reason: at most N characters``, or None when it fits:
    the one check every surface makes of a reason (`MAX_REASON_CHARS`)."""
    if len(reason) > MAX_REASON_CHARS:
        return f"reason: at most {MAX_REASON_CHARS} characters"
    return None


LONGEST_SILENCE = timedelta(weeks=52)
"""The longest silence: past a year it is a channel switched off without saying so.

Here, below both, because the notifier refuses longer ones and retention keeps a
silence's events (`silence.added`, `silence.expired`) as long as it may be in force.
"""


@slot_init
@dataclass(frozen=True, slots=True)
class Event:
    """One append-only row of the event store.

    ``idempotency_key`` is unique: replaying a spooled batch, or recording the
    same outcome twice, never duplicates a row.
    """

    kind: EventKind
    ts: datetime
    idempotency_key: str
    tick_id: str | None = None
    resource: str | None = None
    action_kind: str | None = None
    policy: str | None = None
    reason: str | None = None
    payload: Mapping[str, JSON] = field(default_factory=dict)
    action_id: str | None = None
    """Shared by an `action.started` intent and its one outcome event."""
    id: int | None = None
    """Assigned by the store; None until written."""

    @property
    def withheld(self) -> str | None:
        """The block reason of an `action.failed` that was never sent (`Outcome.withheld`).

        Such an outcome closes an intent, but the action did not reach the
        provider: it is no failure of the resource, the provider or a rollback.
        None for every other event.
        """
        payload = self.payload
        if self.kind is not EventKind.ACTION_FAILED or payload.get("error_kind") is not None:
            return None
        code = payload.get("error_code")
        return code if isinstance(code, str) and code in WITHHOLDING else None

    @property
    def gone(self) -> bool:
        """Whether this is the `action.failed` of a target gone since observe (`Outcome.gone`).

        The provider answered that the target is not there: deleted, most likely
        by a human. No failure of the resource, the provider or Jarvis, so every
        reader counts it as ``gone``, apart from the failures, and says
        `jarvis.model.GONE_LABEL`.
        """
        return self.kind is EventKind.ACTION_FAILED and self.payload.get("error_kind") == (
            ErrorKind.GONE
        )

    @property
    def changed_nothing(self) -> bool:
        """Whether this outcome says its intent changed nothing: `withheld` or `gone`.

        A withheld action was never sent; a gone one found no target to change.
        Neither disrupted anything, so no disruption budget and no fleet-wide cap
        counts its intent (`jarvis.loop.budgets.ChangeLog`, `jarvis.store.fleetcap`).
        Every other outcome counts: an applied change, an unknown one (it may have
        been made), and a failure (a restart that fails may already have disrupted).
        """
        return self.withheld is not None or self.gone


@slot_init
@dataclass(frozen=True, slots=True)
class RetryState:
    """The retry ledger for one (resource, action kind) pair.

    ``attempts`` are the start times of attempts inside the current window,
    oldest first; ``consecutive_failures`` resets on success.
    """

    resource: str
    action_kind: str
    attempts: tuple[datetime, ...] = ()
    consecutive_failures: int = 0
    retry_after: datetime | None = None
    quarantined: bool = False
    last_error: str = ""
    updated_at: datetime | None = None

    @property
    def empty(self) -> bool:
        """Whether the row holds nothing: no attempt, failure, backoff, quarantine or error.

        What `jarvis.loop.ledger.RetryLedger.undo` leaves of a first attempt
        taken back (rows are only ever upserted): every reader takes it as no
        row at all, and `jarvis retries list` does not show it.
        """
        return not (
            self.attempts
            or self.consecutive_failures
            or self.retry_after
            or self.quarantined
            or self.last_error
        )


@dataclass(frozen=True, slots=True)
class KillSwitchState:
    """Whether the kill switch is engaged, and who set it so, why and when."""

    engaged: bool
    actor: str = ""
    reason: str = ""
    changed_at: datetime | None = None


@slot_init
@dataclass(frozen=True, slots=True)
class History:
    """What policies may know besides the current snapshot, passed in as data.

    ``snapshots`` are the most recent ones, oldest first, not including the
    current one. ``events`` are recent events, oldest first (by event time,
    then id), as an `EventHistory` holds them. ``retries`` is the retry ledger
    keyed by (resource, action kind). ``alerts`` are the `alert` events policies
    raised, oldest first: the latest the store held when the loop started and
    those raised since; a policy reads what it already told a human there
    when its snapshots do not reach back that far (after a restart).
    """

    snapshots: Sequence[Snapshot] = ()
    events: Sequence[Event] = ()
    retries: Mapping[tuple[str, str], RetryState] = field(default_factory=dict)
    alerts: Sequence[Event] = ()


class EventHistory(Protocol):
    """Recorded events by event time: the seam `History.events` is filled through.

    `events_since` answers the events of ``kinds`` (every kind when None) of
    ``resource`` (every resource when None) with ``ts >= since``, ordered by
    ``ts``, then id. It is asynchronous, since the event store stands behind
    it (`jarvis.store.history`), so policies, which are pure and synchronous,
    never call it. A policy that reads `History.events` states how far back
    it reads instead, as a ``history_horizon`` attribute (a `timedelta`); the
    reconciler asks this seam for the longest horizon stated when it starts
    (and for nothing when no policy states one), and every tick passes what
    the seam's cache holds, kept current as events are recorded, as
    `History.events`.
    """

    async def events_since(
        self,
        since: datetime,
        *,
        kinds: Collection[str] | None = None,
        resource: str | None = None,
    ) -> Sequence[Event]: ...


class Clock(Protocol):
    """Where time comes from: the wall clock in the daemon, virtual time in tests.

    ``now()`` is timezone-aware UTC. The loop and the simulated fleet read time
    only through a clock, so the same code runs in real and virtual time.
    ``monotonic()`` is for measuring: the wall clock steps (NTP, a resumed VM, a
    hand-set date), and a pace or an age measured on it would step with it.
    """

    def now(self) -> datetime: ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin that never step; only differences mean anything."""
        ...

    async def sleep(self, seconds: float) -> None: ...
