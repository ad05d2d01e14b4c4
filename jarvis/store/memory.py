"""An in-process backend for the event store, and an in-process kill switch.

Built by the simulation harness (`jarvis.simulation.harness`), never from
configuration: a daemon's events must outlive its process. It answers the
same questions as the SQL backend (`jarvis.store.sql`) with the same
semantics — ids in arrival order, a duplicate idempotency key written once,
timestamps read back in UTC, payloads read back as their JSON — which the
store tests pin by running every case against SQLite, PostgreSQL and this.
What it saves is the round trip: a simulated month is 86,400 ticks, and on
SQLite each tick's handful of reads and writes cost more than the tick itself.

Its calls are cancellation points, as a database call is, but they do not
yield to the event loop: the simulation runs one task, and a yield there only
cost a loop iteration (the simulated provider's observe does the same).

Two differences, both on purpose:
- it keeps the newest ``retain`` events (counts stay exact), so a month-long
  simulation runs in flat memory; an idempotency key is recognised while its
  event is retained, which covers every replay the spool makes;
- `available` can be switched off, and then every call fails as an
  unreachable database does, so the simulation can take the database (or,
  with `MemoryKillSwitch`, the kill switch's Redis) away for a while.
"""

from __future__ import annotations

import json
import math
from bisect import bisect_left
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import anyio.lowlevel

from jarvis.config.sections import RetentionSettings
from jarvis.model import Event, EventKind, KillSwitchState, RetryState
from jarvis.model.slots import slot_factory
from jarvis.store.backend import OUTCOME_KINDS
from jarvis.store.errors import FlipOverrunError, StoreError
from jarvis.store.fence import Fences, each
from jarvis.store.fleetcap import Cap, FleetCapError, exceeded
from jarvis.store.memory_lease import MemoryLeases
from jarvis.store.redact import Storable

__all__ = ["MemoryBackend", "MemoryKillSwitch"]

_OUTCOMES = frozenset(OUTCOME_KINDS)
DEFAULT_RETAIN = 5_000
"""Enough for the reconciler's history read and any spool replay; at about 1 KB an
event, 50,000 retained cost 80 MB of a month-long simulation's memory."""


class MemoryBackend:
    """Events and the retry ledger in this process; see the module docstring."""

    url = "memory://"

    def __init__(self, *, retain: int = DEFAULT_RETAIN) -> None:
        if retain < 1:
            raise ValueError("retain must be at least 1")
        self.available = True
        self.leases: MemoryLeases | None = None
        """The lease table fenced writes are checked against (the simulation's replicas)."""
        self._retain = retain
        self._events: list[Event] = []
        self._first_id = 1  # the id of self._events[0]
        self._next_id = 1
        self._keys: set[str] = set()
        self._kinds: Counter[str] = Counter()
        self._open: dict[str, Event] = {}
        self._intents: list[tuple[int, tuple[datetime, str, str]]] = []
        """Every retained ACTION_STARTED but those that changed nothing, as (id, (ts,
        resource, action kind)): what the fleet caps count, without a pass over every
        retained event at each flush."""
        self._retries: dict[tuple[str, str], RetryState] = {}

    @property
    def where(self) -> str:
        return "the in-memory database"

    def unreachable(self, exc: BaseException) -> StoreError:
        return StoreError(f"cannot reach the in-memory database: {exc}")

    def _check(self) -> None:
        if not self.available:
            raise ConnectionRefusedError("the in-memory database is unavailable (simulated)")

    async def write(
        self,
        pending: Sequence[Event],
        retries: Sequence[RetryState],
        fence: Fences | None = None,
        caps: Sequence[Cap] = (),
    ) -> None:
        await anyio.lowlevel.checkpoint_if_cancelled()
        self._check()
        if self.leases is not None:
            for one in each(fence):
                self.leases.check(one)  # the SQL backend's check_fence, first in the "transaction"
        # The SQL backend's check_caps; no lock, as nothing else runs between these lines.
        for cap in caps:
            if (verdict := exceeded(cap, (at for _, at in self._intents))) is not None:
                raise FleetCapError(verdict)
        # Encode everything before storing anything: one bad event fails the
        # whole flush, as a rolled-back transaction does.
        encoded = pending.encoded() if isinstance(pending, Storable) else _unencoded(pending)
        stored = [(event, _payload_read_back(event, text)) for event, text in encoded]
        for state in retries:
            if any(moment.tzinfo is None for moment in state.attempts):
                raise ValueError(f"retry state of {state.resource} has a naive attempt time")
        for event, payload in stored:
            if event.idempotency_key in self._keys:
                continue
            number = self._next_id
            numbered = _read_back(event, number, payload)
            self._next_id += 1
            self._events.append(numbered)
            self._keys.add(numbered.idempotency_key)
            self._kinds[numbered.kind.value] += 1
            if numbered.kind is EventKind.ACTION_STARTED:
                at = (numbered.ts, numbered.resource or "", numbered.action_kind or "")
                self._intents.append((number, at))
            elif numbered.changed_nothing:
                self._uncount(numbered.action_id)
            self._track_intent(numbered)
        for state in retries:
            self._retries[(state.resource, state.action_kind)] = state
        self._trim()

    def _uncount(self, action_id: str | None) -> None:
        """Drop the intent of ``action_id`` from what the fleet caps count: it changed nothing.

        As the SQL backend's `check_caps`, which leaves out every intent an
        outcome closed as withheld or gone (`Event.changed_nothing`). Rare, and the
        intent is among the newest events.
        """
        if action_id is None:
            return
        for event in reversed(self._events):
            if event.kind is EventKind.ACTION_STARTED and event.action_id == action_id:
                at = bisect_left(self._intents, (event.id,))
                if at < len(self._intents) and self._intents[at][0] == event.id:
                    del self._intents[at]
                return

    def _track_intent(self, event: Event) -> None:
        if event.action_id is None:
            return
        if event.kind is EventKind.ACTION_STARTED:
            self._open.setdefault(event.action_id, event)
        elif event.kind in _OUTCOMES:
            self._open.pop(event.action_id, None)

    def _trim(self) -> None:
        # Drop the oldest half of the excess at once: amortised O(1) per event.
        excess = len(self._events) - self._retain
        if excess <= self._retain // 2:
            return
        for event in self._events[:excess]:
            self._keys.discard(event.idempotency_key)
        del self._events[:excess]
        self._first_id += excess
        del self._intents[: bisect_left(self._intents, (self._first_id,))]

    async def events(
        self,
        *,
        limit: int,
        kinds: Sequence[str] | None,
        resource: str | None,
        after_id: int | None,
        since: datetime | None,
    ) -> list[Event]:
        await anyio.lowlevel.checkpoint_if_cancelled()
        self._read_check()
        wanted = None if kinds is None else {str(kind) for kind in kinds}

        def match(event: Event) -> bool:
            return (
                (wanted is None or event.kind.value in wanted)
                and (resource is None or event.resource == resource)
                and (since is None or event.ts >= since)
            )

        found: list[Event] = []
        if limit <= 0:
            return found
        if after_id is not None:
            start = max(0, after_id + 1 - self._first_id)
            for event in self._events[start:]:
                if match(event):
                    found.append(event)
                    if len(found) == limit:
                        break
            return found
        for event in reversed(self._events):
            if match(event):
                found.append(event)
                if len(found) == limit:
                    break
        return found[::-1]

    async def events_by_time(
        self,
        *,
        kinds: Sequence[str] | None,
        resource: str | None,
        since: datetime | None,
        until: datetime | None,
        limit: int | None,
    ) -> list[Event]:
        await anyio.lowlevel.checkpoint_if_cancelled()
        self._read_check()
        wanted = None if kinds is None else {str(kind) for kind in kinds}
        found = [
            event
            for event in self._events
            if (wanted is None or event.kind.value in wanted)
            and (resource is None or event.resource == resource)
            and (since is None or event.ts >= since)
            and (until is None or event.ts <= until)
        ]
        found.sort(key=lambda event: (event.ts, event.id or 0))
        if limit is None:
            return found
        return found[-limit:] if limit > 0 else []

    async def open_intents(self) -> list[Event]:
        await anyio.lowlevel.checkpoint_if_cancelled()
        self._read_check()
        return sorted(self._open.values(), key=lambda event: event.id or 0)

    async def load_retries(self) -> dict[tuple[str, str], RetryState]:
        await anyio.lowlevel.checkpoint_if_cancelled()
        self._read_check()
        return dict(self._retries)

    async def delete_retries(self, resource: str, recorded: Sequence[Event] = ()) -> int:
        await anyio.lowlevel.checkpoint_if_cancelled()
        self._read_check()
        doomed = [key for key in self._retries if key[0] == resource]
        if recorded:  # written first: an event refused deletes nothing, as a rollback
            await self.write(recorded, [])
        for key in doomed:
            del self._retries[key]
        return len(doomed)

    async def count_events(self, kinds: Sequence[str] | None) -> int:
        await anyio.lowlevel.checkpoint_if_cancelled()
        self._read_check()
        if kinds is None:
            return self._kinds.total()
        return sum(self._kinds[str(kind)] for kind in set(kinds))

    async def prune(
        self, retention: RetentionSettings, *, now: datetime, keep_after: datetime, dry_run: bool
    ) -> dict[str, int]:
        """Nothing: this backend already keeps only its newest ``retain`` events (`_trim`)."""
        del retention, now, keep_after, dry_run
        return {}

    async def ping(self) -> None:
        await anyio.lowlevel.checkpoint_if_cancelled()
        self._read_check()

    async def aclose(self) -> None:
        """Nothing to release."""

    def _read_check(self) -> None:
        try:
            self._check()
        except ConnectionRefusedError as exc:
            raise self.unreachable(exc) from exc


# Built once: `json.dumps(..., allow_nan=False)` builds an encoder per call.
_encode = json.JSONEncoder(allow_nan=False).encode


_new_event = slot_factory(Event)
"""`Event` without the class call, for `_read_back`."""
_PLAIN = frozenset({str, int, bool, type(None)})
"""Value types JSON gives back as they went in (exactly these, not subclasses such as enums)."""


def _unencoded(events: Sequence[Event]) -> Iterator[tuple[Event, None]]:
    for event in events:
        yield event, None


def _read_back(event: Event, event_id: int, payload: dict[str, Any]) -> Event:
    """One copy of ``event``, numbered and as a database gives it back.

    Every field named, not `dataclasses.replace`, which costs twice as much a
    stored event; tests/store/test_memory.py fails when `Event` gains a field
    this leaves out. Built by `slot_factory`'s function, and the kind converted only
    when it is not one already (`EventKind(kind)` is two Python-level calls): every
    event of a simulated tick passes here.
    """
    kind = event.kind
    return _new_event(
        kind=kind if type(kind) is EventKind else EventKind(kind),
        ts=event.ts.astimezone(UTC),
        idempotency_key=event.idempotency_key,
        tick_id=event.tick_id,
        resource=event.resource,
        action_kind=event.action_kind,
        policy=event.policy,
        reason=event.reason,
        payload=payload,
        action_id=event.action_id,
        id=event_id,
    )


def _payload_read_back(event: Event, text: str | None) -> dict[str, Any]:
    """The payload as a database gives it back (through JSON); raises if it cannot be stored.

    A flat object of plain values (a tick's start and end, half the events of
    a simulated tick) comes back from JSON as a copy of itself, so it is
    copied without the encoding and decoding; anything else takes the round
    trip, decoding ``text`` when the storable check already encoded it.
    """
    if event.ts.tzinfo is None:
        raise ValueError(f"event {event.idempotency_key!r} has a naive timestamp")
    payload = event.payload
    if type(payload) is dict:
        for key, value in payload.items():
            kind = type(value)
            if type(key) is not str or not (
                kind in _PLAIN or (kind is float and math.isfinite(value))
            ):
                break
        else:
            return dict(payload)
    read_back: dict[str, Any] = json.loads(_encode(dict(payload)) if text is None else text)
    return read_back


class MemoryKillSwitch:
    """A `KillSwitchBackend` in this process, standing in for Redis in the simulation.

    It starts with an explicit release record, as a Redis that Jarvis had
    written would, so reads fall back to the flip history only after
    `restart_empty` (the simulation's ``redis_restart`` fault).
    """

    def __init__(self) -> None:
        self.available = True
        self._state: KillSwitchState | None = KillSwitchState(engaged=False)

    def restart_empty(self) -> None:
        """Lose the record, as a Redis restarted without persistence does (issue 11, item 9)."""
        self._state = None

    async def read(self) -> KillSwitchState | None:
        await anyio.lowlevel.checkpoint_if_cancelled()
        self._check("read")
        return self._state

    async def write(self, state: KillSwitchState) -> None:
        await anyio.lowlevel.checkpoint_if_cancelled()
        self._check("write")
        self._state = state

    async def release(self, state: KillSwitchState, record: Callable[[], Awaitable[None]]) -> None:
        """``record``, then write ``state`` unless another flip was written meanwhile (as
        Redis's WATCH refuses it)."""
        seen = self._state
        await record()
        await anyio.lowlevel.checkpoint_if_cancelled()
        self._check("write")
        if self._state is not seen:
            raise FlipOverrunError("memory (simulated)")
        self._state = state

    async def aclose(self) -> None:
        """Nothing to release."""

    def _check(self, verb: str) -> None:
        if not self.available:
            raise StoreError(f"cannot {verb} the kill switch: its store is unavailable (simulated)")
