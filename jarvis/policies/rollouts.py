"""One resource's version history, read from the event history the reconciler passes in.

Used by the rollback policy (`jarvis.policies.rollback`): which versions ran
healthy to completion ("known good"), which were rolled back as bad, when the
running version arrived and what ran before it, and whether a rollback of the
resource failed. A rollback recorded unknown and confirmed applied later
(`jarvis.loop.unknowns`) is no failure, and when its version was seen arriving
before the confirmation, that arrival is the rollback's. Pure: it reads `Event`s
and their JSON payloads only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TypeGuard

from jarvis.model import JSON, ActionKind, Event, EventKind, Health

# An unknown outcome (no answer in time, or a process that ended mid-apply) is told as one.
_FAILURES = (EventKind.ACTION_FAILED, EventKind.ACTION_UNKNOWN, EventKind.ACTION_ESCALATED)
# Plain values, read once: an enum's ``.value`` is a descriptor call, and these
# are compared for every event of every resource.
_CHANGED = EventKind.RESOURCE_CHANGED
_APPLIED = EventKind.ACTION_APPLIED
_ROLLBACK = ActionKind.ROLLBACK.value
_HEALTHY = Health.HEALTHY.value


@dataclass(frozen=True, slots=True)
class VersionChange:
    """The running version arrived at ``at``, replacing ``previous`` (None: unknown)."""

    at: datetime
    previous: str | None
    restored: bool = False
    """It arrived as the target of a rollback Jarvis applied: the version returned to."""


@dataclass(slots=True)
class RolloutHistory:
    """What the events say about one resource's versions, oldest facts first."""

    uri: str
    good: list[str] = field(default_factory=list)
    """Versions seen healthy with a completed (or unreported) rollout, newest last."""
    bad: set[str] = field(default_factory=set)
    """Versions Jarvis rolled back from (running when a rollback was applied)."""
    changes: dict[str, VersionChange] = field(default_factory=dict)
    """For each version, its latest arrival."""
    rollback_failures: list[Event] = field(default_factory=list)
    """``action.failed`` / ``action.unknown`` / ``action.escalated`` events of rollbacks of
    this resource."""

    @classmethod
    def read(cls, uri: str, events: Iterable[Event]) -> RolloutHistory:
        history = cls(uri=uri)
        running: str | None = None
        # The target of the latest applied rollback, until another version arrives.
        restoring: str | None = None
        for event in events:
            if event.resource != uri:
                continue
            kind = event.kind
            if kind is _CHANGED:
                version = history._changed(event, running, restoring)
                if version != running:
                    restoring = None
                running = version
            elif event.action_kind == _ROLLBACK:
                if kind is _APPLIED:
                    params = event.payload.get("params")
                    target = _text(params.get("version")) if _is_mapping(params) else None
                    if event.payload.get("confirmed") is True:
                        history._confirmed(event.action_id)
                        if target is not None and target == running:
                            # Confirmed once its version was seen arriving: that arrival was it.
                            history._restored(target)
                            continue
                    if running is not None:
                        history.bad.add(running)
                    restoring = target
                elif kind in _FAILURES and event.withheld is None and not event.gone:
                    # A rollback the kill switch withheld never reached the provider;
                    # one whose target was deleted since observe failed no one.
                    history.rollback_failures.append(event)
        return history

    def _restored(self, version: str) -> None:
        """``version``, already running, arrived as a rollback's target: what it replaced is bad."""
        change = self.changes.get(version)
        if change is None:
            return
        if change.previous is not None:
            self.bad.add(change.previous)
        self.changes[version] = replace(change, restored=True)

    def _confirmed(self, action_id: str | None) -> None:
        """The rollback ``action_id`` recorded unknown was since confirmed applied: no failure."""
        self.rollback_failures = [
            e
            for e in self.rollback_failures
            if e.action_id != action_id or e.kind is not EventKind.ACTION_UNKNOWN
        ]

    def _changed(self, event: Event, running: str | None, restoring: str | None) -> str | None:
        payload = event.payload
        version = _text(payload.get("version"))
        if version is None:
            return running
        previous = payload.get("previous")
        before = _text(previous.get("version")) if _is_mapping(previous) else None
        if before is None and running is not None and running != version:
            before = running
        if before is not None and before != version:
            restored = version == restoring
            self.changes[version] = VersionChange(at=event.ts, previous=before, restored=restored)
        attributes = payload.get("attributes")
        rollout = attributes.get("rollout") if _is_mapping(attributes) else None
        if payload.get("health") == _HEALTHY and rollout in (None, "completed"):
            if version in self.good:
                self.good.remove(version)
            self.good.append(version)
        return version

    def failures_since(self, since: datetime | None) -> list[Event]:
        """Rollback failures at or after ``since`` (all of them when None)."""
        return [e for e in self.rollback_failures if since is None or e.ts >= since]


class RolloutIndex:
    """Every resource's `RolloutHistory`, kept in step with a sliding window of events.

    The reconciler passes its recent events as a window that moves a little
    each tick: a few events fall off the front, a few arrive at the back.
    Reading the whole window for every resource every tick was most of the
    rollback policy's time, so this keeps the window's events grouped by
    resource and reads again only the resources whose events changed. It checks
    (never assumes) that a new window continues the last one, and groups from
    scratch when it does not. Only the events a read looks at are kept
    (`_read_by`): a resource's scaling decisions and restarts, most of the
    window, neither lengthen its list nor make it read again. `history` equals
    ``RolloutHistory.read(uri, <the window's events for uri>)`` when the window
    holds such an event, and is None when it holds none (a read would be
    empty); callers must not change what it returns, since the next tick may be
    handed the same object. Only resources with such events are kept, so memory
    follows the window, not the fleet.
    """

    def __init__(self) -> None:
        self._window: tuple[Event, ...] = ()
        self._by_uri: dict[str, list[Event]] = {}
        self._read: dict[str, RolloutHistory] = {}

    def update(self, events: Iterable[Event]) -> None:
        """Move to the window ``events``."""
        window = tuple(events)
        previous = self._window
        if window is previous:
            return
        kept = _continued(previous, window)
        if kept == 0:
            self._by_uri.clear()
            self._read.clear()
        else:
            self._drop(previous[: len(previous) - kept])
        self._add(window[kept:])
        self._window = window

    def history(self, uri: str) -> RolloutHistory | None:
        """The resource's history; None when the window holds no event a read looks at."""
        events = self._by_uri.get(uri)
        if events is None:
            return None
        read = self._read.get(uri)
        if read is None:
            read = self._read[uri] = RolloutHistory.read(uri, events)
        return read

    def _drop(self, events: tuple[Event, ...]) -> None:
        # The window lost a prefix, so each resource lost the head of its list.
        counts: dict[str, int] = {}
        for event in events:
            uri = event.resource
            if uri is not None and _read_by(event):
                counts[uri] = counts.get(uri, 0) + 1
        for uri, count in counts.items():
            remaining = self._by_uri[uri]
            del remaining[:count]
            if not remaining:
                del self._by_uri[uri]
            self._read.pop(uri, None)

    def _add(self, events: tuple[Event, ...]) -> None:
        by_uri = self._by_uri
        for event in events:
            uri = event.resource
            if uri is not None and _read_by(event):
                if uri in by_uri:
                    by_uri[uri].append(event)
                else:
                    by_uri[uri] = [event]
                self._read.pop(uri, None)


def _read_by(event: Event) -> bool:
    """Whether `RolloutHistory.read` looks at ``event``: a version change, any rollback event."""
    return event.kind is _CHANGED or event.action_kind == _ROLLBACK


def _continued(previous: tuple[Event, ...], window: tuple[Event, ...]) -> int:
    """How many leading events of ``window`` are the tail of ``previous`` (0: none, or unsure)."""
    if not previous or not window:
        return 0
    first = window[0]
    # The window usually lost a few events at most, so the search is short.
    for start, event in enumerate(previous):
        if event is first:
            kept = len(previous) - start
            # Tuple comparison checks identity first, so this is a fast C loop.
            if kept <= len(window) and window[:kept] == previous[start:]:
                return kept
            return 0
    return 0


def _text(value: JSON) -> str | None:
    if value is None or value == "":
        return None
    return str(value)


def _is_mapping(value: JSON) -> TypeGuard[Mapping[str, JSON]]:
    # Payloads are plain dicts in practice; the ABC check is the slow fallback.
    return type(value) is dict or isinstance(value, Mapping)
