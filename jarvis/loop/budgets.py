"""The changes disruption budgets count, as the loop remembers them.

The reconciler (`jarvis.loop.reconciler`) owns one `ChangeLog`: `load` rebuilds
it at start from the ``action.started`` intents in the event store (so a
restart does not reset a budget), `note` adds each action the loop lets
through to its provider, and `current` hands the guard the changes still inside
the longest budget window. `jarvis budgets` loads one the same way. The
decisions are the guard's (`jarvis.safety.budgets`); this class only keeps the
list. Changes made by another process (a `jarvis tick` beside the daemon) are
seen at the next `load`, that is, the daemon's next start.
"""

from __future__ import annotations

from collections import deque
from datetime import datetime

from jarvis.model import Action, Event, EventKind, ResourceRef
from jarvis.safety.budgets import Budgets, Change
from jarvis.store import EventStore

__all__ = ["ChangeLog", "change_of"]


def change_of(event: Event) -> Change | None:
    """The change an ``action.started`` intent records; None for a row that names no resource."""
    if event.resource is None or event.action_kind is None:
        return None
    try:
        target = ResourceRef.parse(event.resource)
    except ValueError:
        return None
    return Change(ts=event.ts, target=target, kind=event.action_kind)


class ChangeLog:
    """Changes inside the longest budget window, oldest first; empty when no budget is set."""

    def __init__(self, budgets: Budgets) -> None:
        self.budgets = budgets
        self._changes: deque[Change] = deque()

    async def load(self, store: EventStore, now: datetime) -> None:
        """Rebuild from the intents recorded inside the longest window before ``now``."""
        self._changes.clear()
        horizon = self.budgets.horizon
        if not horizon:
            return
        found = await store.events_by_time(kinds=[EventKind.ACTION_STARTED], since=now - horizon)
        self._changes.extend(c for c in map(change_of, found) if c is not None)

    def note(self, action: Action, ts: datetime) -> None:
        """Count an action the loop is about to hand to its provider."""
        if self.budgets.horizon:
            self._changes.append(Change(ts=ts, target=action.target, kind=action.kind))

    def current(self, now: datetime) -> tuple[Change, ...]:
        """The changes younger than the longest window; older ones are forgotten."""
        edge = now - self.budgets.horizon
        changes = self._changes
        while changes and changes[0].ts <= edge:
            changes.popleft()
        return tuple(changes)
