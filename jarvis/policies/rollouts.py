"""One resource's version history, read from the event history the reconciler passes in.

Used by the rollback policy (`jarvis.policies.rollback`): which versions ran
healthy to completion ("known good"), which were rolled back as bad, when the
running version arrived and what ran before it, and whether a rollback of the
resource failed. Pure: it reads `Event`s and their JSON payloads only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from jarvis.model import JSON, ActionKind, Event, EventKind, Health

_FAILURES = (EventKind.ACTION_FAILED, EventKind.ACTION_ESCALATED)


@dataclass(frozen=True, slots=True)
class VersionChange:
    """The running version arrived at ``at``, replacing ``previous`` (None: unknown)."""

    at: datetime
    previous: str | None


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
    """``action.failed`` / ``action.escalated`` events of rollbacks of this resource."""

    @classmethod
    def read(cls, uri: str, events: Iterable[Event]) -> RolloutHistory:
        history = cls(uri=uri)
        running: str | None = None
        for event in events:
            if event.resource != uri:
                continue
            if event.kind is EventKind.RESOURCE_CHANGED:
                running = history._changed(event, running)
            elif event.action_kind == ActionKind.ROLLBACK.value:
                if event.kind is EventKind.ACTION_APPLIED and running is not None:
                    history.bad.add(running)
                elif event.kind in _FAILURES:
                    history.rollback_failures.append(event)
        return history

    def _changed(self, event: Event, running: str | None) -> str | None:
        payload = event.payload
        version = _text(payload.get("version"))
        if version is None:
            return running
        previous = payload.get("previous")
        before = _text(previous.get("version")) if isinstance(previous, Mapping) else None
        if before is None and running is not None and running != version:
            before = running
        if before is not None and before != version:
            self.changes[version] = VersionChange(at=event.ts, previous=before)
        attributes = payload.get("attributes")
        rollout = attributes.get("rollout") if isinstance(attributes, Mapping) else None
        if payload.get("health") == Health.HEALTHY.value and rollout in (None, "completed"):
            if version in self.good:
                self.good.remove(version)
            self.good.append(version)
        return version

    def failures_since(self, since: datetime | None) -> list[Event]:
        """Rollback failures at or after ``since`` (all of them when None)."""
        return [e for e in self.rollback_failures if since is None or e.ts >= since]


def _text(value: JSON) -> str | None:
    if value is None or value == "":
        return None
    return str(value)
