"""The changes disruption budgets count, as the loop remembers them.

The reconciler (`jarvis.loop.reconciler`) owns one `ChangeLog`: `load` rebuilds
it at start, and again at the start of every tick, from the ``action.started``
intents in the event store (so a restart does not reset a budget, and the
changes of another process, a `jarvis tick` beside the daemon, count from its
next tick); `note` adds each action the loop lets through to its provider, and
`current` hands the guard the changes still inside the longest budget window.
`jarvis budgets` loads one the same way. The decisions are the guard's
(`jarvis.safety.budgets`); this class only keeps the list. Nothing is read when
no budget is configured.
"""

from __future__ import annotations

from collections import deque
from datetime import datetime

import structlog

from jarvis.model import Action, Event, EventKind, ResourceRef
from jarvis.safety.budgets import Budgets, Change
from jarvis.store import EventStore

__all__ = ["ChangeLog", "change_of"]

log = structlog.get_logger("jarvis.reconciler")


def change_of(event: Event) -> Change | None:
    """The change an ``action.started`` intent records; None for a row that names no resource."""
    if event.resource is None or event.action_kind is None:
        return None
    try:
        target = ResourceRef.parse(event.resource)
    except ValueError:
        return None
    return Change(ts=event.ts, target=target, kind=event.action_kind, action_id=event.action_id)


class ChangeLog:
    """Changes inside the longest budget window, oldest first; empty when no budget is set."""

    def __init__(self, budgets: Budgets) -> None:
        self.budgets = budgets
        self._changes: deque[Change] = deque()

    async def load(self, store: EventStore, now: datetime) -> None:
        """Rebuild from the intents recorded inside the longest window before ``now``.

        Kept: this process's own changes the store does not hold yet (spooled
        during an outage), matched by action id, so a re-read never forgets one.
        """
        horizon = self.budgets.horizon
        if not horizon:
            return
        found = await store.events_by_time(kinds=[EventKind.ACTION_STARTED], since=now - horizon)
        merged = {c.action_id: c for c in self._changes if c.action_id is not None}
        for change in map(change_of, found):
            if change is not None:
                merged[change.action_id or f"{change.ts.isoformat()} {change.target}"] = change
        self._changes = deque(sorted(merged.values(), key=lambda c: c.ts))

    async def refresh(self, store: EventStore, now: datetime) -> None:
        """`load` once per tick; while the store cannot answer, the in-memory list stands."""
        if not self.budgets.horizon:
            return
        try:
            await self.load(store, now)
        except Exception as exc:  # noqa: BLE001 - a store outage must not stop the tick
            log.warning("disruption budgets unreadable; using the in-memory list", error=str(exc))

    def note(self, action: Action, ts: datetime, action_id: str) -> None:
        """Count an action the loop is about to hand to its provider."""
        if self.budgets.horizon:
            change = Change(ts=ts, target=action.target, kind=action.kind, action_id=action_id)
            self._changes.append(change)

    def current(self, now: datetime) -> tuple[Change, ...]:
        """The changes younger than the longest window; older ones are forgotten."""
        edge = now - self.budgets.horizon
        changes = self._changes
        while changes and changes[0].ts <= edge:
            changes.popleft()
        return tuple(changes)
