"""What the other replicas did, read from the shared event store.

With shards (`jarvis.loop.shards`) every replica runs its own loop over its
own resources, but the fleet-wide limits are the fleet's: the per-tick bound
and the fleet breaker must count what every replica did. The store is the one
place all of them write, so each replica reads the others' rows from it:

- `EventTail` reads the rows of some kinds written since the last read, by
  event id (not time: a row written late still has a newer id). The disruption
  budgets' `jarvis.loop.budgets.ChangeLog` reads the intents with one, the
  fleet breaker the others' failures with another (`PeerFailures`).
- `tick_window` says what "this tick" means across replicas: the replicas'
  ticks are not aligned, so the per-tick bound counts the intents started in
  the current interval-long window of wall-clock time, aligned on the Unix
  epoch (``[k * interval, (k + 1) * interval)``). One replica ticking once an
  interval puts each tick in one window (or across two, sharing the bound
  between them); N replicas share each window's bound.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from jarvis.model import Event, EventKind
from jarvis.store import EventStore

__all__ = ["EventTail", "PeerFailures", "tick_window"]

_PAGE = 1000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def tick_window(now: datetime, interval: timedelta) -> datetime:
    """The start of the interval-long window ``now`` falls in, aligned on the Unix epoch."""
    windows = (now - _EPOCH) // interval
    return _EPOCH + windows * interval


class EventTail:
    """Rows of ``kinds`` written after a cursor (an event id), read page by page."""

    def __init__(self, kinds: Sequence[str]) -> None:
        self.kinds = list(kinds)
        self.cursor: int | None = None
        """The newest event id read; None until `start`."""

    async def start(self, store: EventStore) -> None:
        """Begin after the newest row now in the store."""
        newest = await store.events(limit=1)
        self.cursor = newest[-1].id if newest else 0

    def seen(self, event: Event) -> None:
        """Move the cursor past ``event`` (read by another query, such as a time range)."""
        if event.id is not None and (self.cursor is None or event.id > self.cursor):
            self.cursor = event.id

    async def read(self, store: EventStore) -> list[Event]:
        """The rows written since the last read; none before `start`. Store errors raise."""
        if self.cursor is None:
            return []
        out: list[Event] = []
        while True:
            found = await store.events(kinds=self.kinds, after_id=self.cursor, limit=_PAGE)
            for event in found:
                self.seen(event)
            out.extend(found)
            if len(found) < _PAGE:
                return out


class PeerFailures:
    """The failed actions other replicas recorded since the last read."""

    def __init__(self) -> None:
        # A call with no answer in time is recorded unknown; the breakers count it still.
        self._tail = EventTail([EventKind.ACTION_FAILED, EventKind.ACTION_UNKNOWN])

    async def start(self, store: EventStore) -> None:
        await self._tail.start(store)

    async def read(self, store: EventStore, me: str | None) -> list[Event]:
        """Failures named by a replica other than ``me`` (this process's own are settled)."""
        return [
            event
            for event in await self._tail.read(store)
            if (replica := event.payload.get("replica")) is not None and replica != me
        ]
