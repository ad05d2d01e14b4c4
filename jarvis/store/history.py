"""Policies' event history: the event store by event time, with a window cached in front.

The reconciler (`jarvis.loop.reconciler`) builds one `StoreHistory` for the
event kinds policies read, `load`s it at start for the longest horizon a
policy states, `append`s each such event it records, and passes `window` to
policies every tick as `History.events`. It implements `EventHistory`
(`jarvis.model`): `events_since` serves from the window the range it holds
and reaches the store only for what is older, or for kinds it does not hold.

What the window holds: the newest ``size`` events of its kinds that `load`
found, then every one appended since, less those `forget_before` let go.
The reconciler lets go each tick of what is older than the horizon it loaded
at start, so a loop that has run for days holds what a restart would load
(and its memory stops growing once the horizon is full). `_edge` marks how
far back that is complete: every event of its kinds with ``ts > _edge`` is
in the window. Each event that falls off the front moves the edge up to its
time.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Collection
from datetime import datetime, timedelta

from jarvis.model import Event
from jarvis.store.events import EventStore

__all__ = ["StoreHistory"]

_TICK = timedelta(microseconds=1)
"""The resolution of stored times: ``ts > since - _TICK`` is ``ts >= since``."""


class StoreHistory:
    """An `EventHistory` on an `EventStore`; see the module docstring."""

    def __init__(self, store: EventStore, *, kinds: Collection[str], size: int) -> None:
        self.store = store
        self.kinds = frozenset(str(kind) for kind in kinds)
        self._window: deque[Event] = deque(maxlen=size)
        self._frozen: tuple[Event, ...] | None = None
        """`window` as last handed out; None once the window changed since."""
        self._edge: datetime | None = (
            None  # None: nothing loaded yet, the window vouches for nothing
        )

    @property
    def window(self) -> tuple[Event, ...]:
        """The cached events, oldest first: what policies get as `History.events`.

        Copied once per change, not once per tick: most ticks append none of
        the window's kinds, and copying a full window (5,000 events) cost about
        2 % of a simulated month's time.
        """
        if self._frozen is None:
            self._frozen = tuple(self._window)
        return self._frozen

    async def load(self, since: datetime) -> None:
        """Fill the window from the store: the newest events of its kinds at or after ``since``.

        Ordered by event time, then id, which is the order a live window
        appends in; ids alone are out of time order after a late spool replay.
        """
        size = self._window.maxlen or 0
        found = await self.store.events_by_time(kinds=sorted(self.kinds), since=since, limit=size)
        self._window.clear()
        self._window.extend(found)
        self._frozen = None
        # A full window may have cut events that share its oldest time.
        self._edge = found[0].ts if found and len(found) == size else since - _TICK

    def append(self, event: Event) -> None:
        """Add an event the loop recorded (of the window's kinds), newest last."""
        window = self._window
        if len(window) == window.maxlen and window:
            self._dropped(window[0])
        window.append(event)
        self._frozen = None

    def forget_before(self, since: datetime) -> None:
        """Let go of the events at the front older than ``since``, as `load(since)` would skip.

        The window is in the order recorded, which trails event time by a
        moment at most: an event older than ``since`` behind a newer one stays
        until it reaches the front, and `events_since` still answers by time.
        """
        window = self._window
        while window and window[0].ts < since:
            self._dropped(window.popleft())
            self._frozen = None

    def _dropped(self, event: Event) -> None:
        """``event`` left the front: the window vouches only for what is newer."""
        if self._edge is None or event.ts > self._edge:
            self._edge = event.ts

    async def events_since(
        self,
        since: datetime,
        *,
        kinds: Collection[str] | None = None,
        resource: str | None = None,
    ) -> list[Event]:
        """Events of ``kinds`` of ``resource`` with ``ts >= since``, by event time, then id."""
        wanted = self.kinds if kinds is None else frozenset(str(kind) for kind in kinds)
        edge = self._edge
        if kinds is None or edge is None or not wanted <= self.kinds:
            # The window holds only some kinds (or nothing yet): the store answers alone.
            return await self.store.events_by_time(
                kinds=None if kinds is None else sorted(wanted), resource=resource, since=since
            )
        older: list[Event] = []
        if since <= edge:
            older = await self.store.events_by_time(
                kinds=sorted(wanted), resource=resource, since=since, until=edge
            )
        held = [
            event
            for event in self._window
            if event.ts > edge
            and event.ts >= since
            and event.kind.value in wanted
            and (resource is None or event.resource == resource)
        ]
        # Appended in the order recorded, which can trail the clock by a moment.
        return older + sorted(held, key=lambda event: event.ts)
