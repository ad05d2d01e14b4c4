"""The changes disruption budgets count, as the loop remembers them.

The reconciler (`jarvis.loop.reconciler`) owns one `ChangeLog`: `load` rebuilds
it at start from the ``action.started`` intents in the event store (so a
restart does not reset a budget), `refresh` adds at the start of every tick
the intents written since (so the changes of another process, a `jarvis tick`
beside the daemon, count from its next tick), both less the intents whose
outcome says they changed nothing (`jarvis.model.Event.changed_nothing`: the
kill switch withheld them unsent, or the provider answered their target gone),
`note` adds each action the loop lets through to its provider, `withdraw`
takes back one whose target the provider answered gone, and `current` hands
the guard the changes still inside the longest budget window.
`jarvis budgets` loads one the same way. The decisions are the guard's
(`jarvis.safety.budgets`); this class only keeps the list. Nothing is read when
no budget is configured and no tick window is given.

With shards the reconciler also gives it the tick ``window`` (the loop
interval): `started_since` then counts the intents of every replica in the
current window (`jarvis.loop.peers.tick_window`), which is what the per-tick
bound compares with fleet-wide.
"""

from __future__ import annotations

from collections import deque
from datetime import datetime, timedelta

import structlog

from jarvis.loop.peers import EventTail
from jarvis.model import Action, Event, EventKind, ResourceRef
from jarvis.safety.budgets import Budgets, Change
from jarvis.store import EventStore

__all__ = ["ChangeLog", "change_of"]

_READ = [EventKind.ACTION_STARTED.value, EventKind.ACTION_FAILED.value]
"""Intents, and the outcomes that may say one changed nothing (withheld, or gone)."""

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
    """Changes inside the longest budget window (or the tick window), oldest first.

    Empty when neither a budget nor a tick window is set.
    """

    def __init__(self, budgets: Budgets, window: timedelta = timedelta(0)) -> None:
        self.budgets = budgets
        self.window = window
        """The tick window of the fleet-wide per-tick bound; zero without shards."""
        self.horizon = max(budgets.horizon, window)
        self._changes: deque[Change] = deque()
        self._known: set[str] = set()
        """Action ids of the changes held: one change however often it is read back."""
        self._tail = EventTail(_READ)
        """`refresh` reads only what was written after its cursor."""

    async def load(self, store: EventStore, now: datetime) -> None:
        """Rebuild from the intents recorded inside the longest window before ``now``."""
        self._changes.clear()
        self._known.clear()
        if not self.horizon:
            return
        await self._tail.start(store)
        found = await store.events_by_time(kinds=_READ, since=now - self.horizon)
        self._add(found)

    async def refresh(self, store: EventStore) -> None:
        """Add the intents written since the last read, by this process or another.

        By event id, not time: a row another process writes late (a spool
        replayed after an outage) still has a newer id, and the read costs what
        was written since, not the whole window. While the store cannot answer,
        the in-memory list stands.
        """
        if not self.horizon:
            return
        try:
            self._add(await self._tail.read(store))
        except Exception as exc:  # noqa: BLE001 - a store outage must not stop the tick
            log.warning(
                "disruption budgets unreadable; using the in-memory list", error=store.explain(exc)
            )

    def note(self, action: Action, ts: datetime, action_id: str) -> None:
        """Count an action the loop is about to hand to its provider."""
        if self.horizon and action_id not in self._known:
            self._known.add(action_id)
            change = Change(ts=ts, target=action.target, kind=action.kind, action_id=action_id)
            self._changes.append(change)

    def started_since(self, start: datetime) -> int:
        """How many changes (of any replica) started at or after ``start``."""
        return sum(1 for change in self._changes if change.ts >= start)

    def current(self, now: datetime) -> tuple[Change, ...]:
        """The changes younger than the longest window; older ones are forgotten."""
        edge = now - self.horizon
        changes = self._changes
        while changes and changes[0].ts <= edge:
            gone = changes.popleft()
            self._known.discard(gone.action_id or "")
        return tuple(changes)

    def _add(self, events: list[Event]) -> None:
        for event in events:
            self._tail.seen(event)
            key = event.action_id or event.idempotency_key
            if event.changed_nothing:
                self.withdraw(key)
                continue
            change = change_of(event) if event.kind is EventKind.ACTION_STARTED else None
            if change is None or key in self._known:
                continue
            self._known.add(key)
            self._changes.append(change)
        # Read back late or from another process: keep the list in time order.
        if events:
            self._changes = deque(sorted(self._changes, key=lambda c: c.ts))

    def withdraw(self, action_id: str) -> None:
        """Forget the change of an intent that changed nothing (`Event.changed_nothing`).

        The applier calls it for an outcome whose target was gone; `load` and
        `refresh` for every such outcome read back. Its id stays known, so the
        intent is not counted if read again.
        """
        self._known.add(action_id)
        if any(change.action_id == action_id for change in self._changes):
            self._changes = deque(c for c in self._changes if c.action_id != action_id)
