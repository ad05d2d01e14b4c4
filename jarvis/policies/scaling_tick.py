"""What one evaluation of the scaling policy works out once and shares across services.

Used by the scaling policy (`jarvis.policies.scaling`) alone: `ScalingPolicy.evaluate`
starts a `Tick` each call, fills each rule's bounds and this snapshot's
recommendations into it as services need them, and sorts the history it looks
back on into a `Span` on first use. Neither outlives the tick.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from jarvis.model import History, Snapshot
from jarvis.policies.hpa_behavior import ScaleEvent
from jarvis.policies.schedule import ScheduleWindow

__all__ = ["Memo", "Span", "Tick", "scale_events", "stale_before"]

Memo = dict[int, tuple[Snapshot, dict[str, int | None]]]
"""The policy's recommendations per past snapshot: {id(snapshot): (snapshot, {uri: replicas})}."""


@dataclass(slots=True)
class Tick:
    """One evaluation's inputs and what it works out once and shares across services."""

    history: History
    now: datetime
    stale_before: datetime | None = None
    """Metrics observed before this are stale; None: compare ages instead (see `stale_before`)."""
    bounds: dict[int, tuple[int, int, ScheduleWindow | None]] = field(default_factory=dict)
    """Each rule's bounds at ``now``, by rule index, on first use."""
    recommended: dict[str, int | None] = field(default_factory=dict)
    """This snapshot's recommendations, kept for later windows when ``now`` is its time."""
    span: Span | None = None


@dataclass(frozen=True, slots=True)
class Span:
    """The history one tick looks back on, sorted out once for all its services."""

    covering: tuple[Snapshot, ...]
    """At or before the scale-down window's start: a service seen in one has a covered window."""
    up_window: tuple[tuple[Snapshot, dict[str, int | None]], ...]
    """Inside the scale-up stabilization window, each with its memo of recommendations."""
    down_window: tuple[tuple[Snapshot, dict[str, int | None]], ...]
    """Inside the scale-down stabilization window, likewise."""
    past: tuple[Snapshot, ...]
    """Every snapshot up to now, oldest first: the scale events of the rate policies."""

    @classmethod
    def of(cls, tick: Tick, up_window: timedelta, down_window: timedelta, memo: Memo) -> Span:
        """Sort the tick's history into windows, each snapshot with its memo of recommendations.

        Kubernetes counts a recommendation while ``timestamp.After(now - window)``:
        one made exactly one window ago is outside.
        """
        now = tick.now
        up_cutoff, down_cutoff = now - up_window, now - down_window
        past = [snapshot for snapshot in tick.history.snapshots if snapshot.taken_at <= now]
        recent = [
            (s, memo.setdefault(id(s), (s, {}))[1])
            for s in past
            if s.taken_at > min(up_cutoff, down_cutoff)
        ]
        return cls(
            covering=tuple(s for s in past if s.taken_at <= down_cutoff),
            up_window=tuple(r for r in recent if r[0].taken_at > up_cutoff),
            down_window=tuple(r for r in recent if r[0].taken_at > down_cutoff),
            past=tuple(past),
        )


def scale_events(uri: str, past: Sequence[Snapshot], current: int) -> list[ScaleEvent]:
    """Changes of ``uri``'s desired count between snapshots, each timed at the earlier one:
    the tick that applied it, as Kubernetes times a scale event at its rescale."""
    events: list[ScaleEvent] = []
    before: tuple[datetime, int] | None = None
    for snapshot in past:
        state = snapshot.resources.get(uri)
        if state is None or state.replicas is None:
            continue
        count = state.replicas.desired
        if before is not None and count != before[1]:
            events.append(ScaleEvent(before[0], count - before[1]))
        before = (snapshot.taken_at, count)
    if before is not None and current != before[1]:
        events.append(ScaleEvent(before[0], current - before[1]))
    return events


def stale_before(now: datetime, max_age: timedelta) -> datetime | None:
    """``now - max_age``, when ``observed_at < it`` says what ``now - observed_at > max_age`` does.

    A comparison costs less than a subtraction that builds a timedelta, and the
    policy asks this of every service every tick. Both are exact for naive
    times and for UTC, the zone of every clock the loop has. In a zone with
    daylight saving, subtracting from ``now`` moves its wall clock across a
    change of offset, so None: the caller subtracts, as before.
    """
    if now.tzinfo is not None and now.tzinfo is not UTC:
        return None
    try:
        return now - max_age
    except OverflowError:  # a limit reaching before year 1: subtracting ages still works
        return None
