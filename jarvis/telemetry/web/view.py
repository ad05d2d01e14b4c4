"""What the status page shows, gathered from the daemon at one instant.

`gather` asks the `PageBackend` (the loop's `AdminService`, injected) for the
kill switch, the quarantined ledger rows, open incidents and recent events,
and the injected callables for loop health and the month's budget. A part
that cannot be read (the store is down) is shown as unavailable with its
error type; the rest of the page still renders, since an operator opens this
page precisely when something is wrong.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar

from jarvis.model import GONE_LABEL, Action, Event, RetryState
from jarvis.safety import Remaining
from jarvis.telemetry.admin import AdminBackend

__all__ = [
    "BudgetView",
    "LeaderView",
    "NotificationView",
    "OverrideResult",
    "PageBackend",
    "event_json",
    "gather",
]

#: Events on the page when it loads; the live feed adds newer ones.
RECENT_EVENTS = 50
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class OverrideResult:
    """What became of an operator's override, as the page says it."""

    state: str
    """``applied``, ``blocked``, ``gone`` (its target deleted since observed), ``failed``,
    ``refused`` (not queued) or ``pending``."""
    detail: str

    @property
    def ok(self) -> bool:
        return self.state == "applied"


@dataclass(frozen=True, slots=True)
class LeaderView:
    """Who runs the loop: one node on SQLite; on PostgreSQL the lease's holder and term."""

    single_node: bool
    here: str | None = None
    """This replica's id (None on one node)."""
    replica: str | None = None
    epoch: int | None = None
    expires_at: datetime | None = None
    expired: bool = False

    @property
    def leads_here(self) -> bool:
        return self.single_node or (self.replica == self.here and not self.expired)


@dataclass(frozen=True, slots=True)
class NotificationView:
    """One open notification incident: an alert group a channel was (or will be) told of."""

    channel: str
    cause: str
    provider: str
    since: datetime
    alerts: int
    sent: bool
    """Whether the channel has been sent it yet (False while the group waits)."""


class PageBackend(AdminBackend, Protocol):
    """What the status page needs from the rest of the daemon: the admin API's, and more."""

    @property
    def overrides_enabled(self) -> bool:
        """Whether `override` can queue anything (only inside a running daemon)."""
        ...

    async def override(self, action: Action) -> OverrideResult:
        """Have the daemon's next tick propose ``action``; its verdict, or why there is none."""
        ...

    async def leader(self) -> LeaderView | None: ...

    def budgets_left(self) -> Sequence[Remaining]: ...

    def notifications(self) -> Sequence[NotificationView] | None:
        """Open notification incidents; None when no channel is configured."""
        ...

    def known_resources(self) -> Sequence[str]:
        """What the last tick observed: the override form offers these names."""
        ...

    async def quarantined(self) -> list[RetryState]: ...

    async def reset_retries(self, *, resource: str, actor: str) -> int:
        """Lift a quarantine; raise LookupError for a resource with no ledger rows."""
        ...

    async def recent_events(self, *, after_id: int | None, limit: int) -> Sequence[Event]: ...

    async def escalations(self, *, limit: int) -> Sequence[Event]: ...


@dataclass(frozen=True, slots=True)
class BudgetView:
    """The month's LLM budget against what is spent, as the cost policy reads it."""

    month: str
    budget_usd: float
    spent_usd: float
    forecast_usd: float

    @property
    def used_percent(self) -> float:
        return 100.0 * self.spent_usd / self.budget_usd if self.budget_usd > 0 else 0.0


def when(moment: datetime | None) -> str:
    return "" if moment is None else moment.isoformat(timespec="seconds")


def event_json(event: Event) -> dict[str, Any]:
    """One event as the page shows it, on load and in the live feed (text, never HTML).

    ``kind`` is the stored kind; ``label`` and ``row`` (the row's CSS classes)
    are what the page shows. An ``action.failed`` that only closed an intent
    the kill switch withheld (`Event.withheld`) never reached the provider: it
    reads as ``action.withheld``, blocked for its reason, not as a red failure.
    One whose target was deleted since it was observed (`Event.gone`) reads as
    ``action.gone``, `GONE_LABEL` and the provider's answer: nothing failed.
    """
    kind = str(event.kind.value)
    label, reason = kind, event.reason or ""
    detail = event.payload.get("detail")
    if (code := event.withheld) is not None:
        label = "action.withheld"
        reason = f"blocked ({code})" + (f": {detail}" if detail else "")
    elif event.gone:
        label = "action.gone"
        reason = GONE_LABEL + (f": {detail}" if detail else "")
    return {
        "id": event.id,
        "ts": when(event.ts),
        "kind": kind,
        "label": label,
        "row": f"{label.split('.')[0]} {label.replace('.', '-')}",
        "resource": event.resource or "",
        "reason": reason,
    }


async def _part(read: Callable[[], Awaitable[T]]) -> tuple[T | None, str | None]:
    """The part's value, or None and why it could not be read."""
    try:
        return await read(), None
    except Exception as exc:  # noqa: BLE001 - one unreadable part must not blank the page
        return None, f"unavailable ({exc.__class__.__name__})"


def _incidents(escalated: Sequence[Event], quarantined: Sequence[RetryState]) -> list[Event]:
    """The newest escalation of each pair still quarantined: open until someone resets it."""
    open_pairs = {(s.resource, s.action_kind) for s in quarantined}
    latest: dict[tuple[str | None, str | None], Event] = {}
    for event in escalated:
        latest[(event.resource, event.action_kind)] = event
    found = [e for key, e in latest.items() if key in open_pairs]
    return sorted(found, key=lambda e: e.ts, reverse=True)


async def gather(
    backend: PageBackend,
    healthy: Callable[[], tuple[bool, str]],
    budget: Callable[[], BudgetView | None] | None,
) -> dict[str, Any]:
    """The template's context: every section, each possibly marked unavailable."""
    killswitch, killswitch_error = await _part(backend.killswitch_status)
    quarantined, quarantined_error = await _part(backend.quarantined)
    escalated, _ = await _part(lambda: backend.escalations(limit=200))
    events, events_error = await _part(
        lambda: backend.recent_events(after_id=None, limit=RECENT_EVENTS)
    )
    leader, leader_error = await _part(backend.leader)
    try:
        budgets_left = list(backend.budgets_left())
    except Exception:  # noqa: BLE001 - shown as none rather than failing the page
        budgets_left = []
    try:
        ok, detail = healthy()
    except Exception as exc:  # noqa: BLE001 - a broken check reads as unhealthy
        ok, detail = False, f"health check failed ({exc.__class__.__name__})"
    try:
        spend = budget() if budget is not None else None
    except Exception:  # noqa: BLE001 - the budget is shown as unknown rather than failing the page
        spend = None
    newest = list(reversed(events or []))
    return {
        "health": {"ok": ok, "detail": detail},
        "killswitch": killswitch,
        "killswitch_error": killswitch_error,
        "quarantined": quarantined or [],
        "quarantined_error": quarantined_error,
        "incidents": _incidents(escalated or [], quarantined or []),
        "events": [event_json(e) for e in newest],
        "events_error": events_error,
        "last_event_id": max((e.id or 0 for e in newest), default=0),
        "budget": spend,
        "leader": leader,
        "leader_error": leader_error,
        "budgets_left": budgets_left,
        "overrides": backend.overrides_enabled,
        "resources": list(backend.known_resources()),
        "notifications": backend.notifications(),
        "when": when,
    }
