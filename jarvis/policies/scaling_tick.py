"""What one evaluation of the scaling policy works out once and shares across services.

Used by the scaling policy (`jarvis.policies.scaling`) alone: `ScalingPolicy.evaluate`
starts a `Tick` each call, fills each rule's bounds and this snapshot's
recommendations into it as services need them, and sorts the history it looks
back on into a `Span` on first use. Neither outlives the tick.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from jarvis.model import History, Snapshot
from jarvis.policies.schedule import ScheduleWindow

__all__ = ["Span", "Tick"]


@dataclass(slots=True)
class Tick:
    """One evaluation's inputs and what it works out once and shares across services."""

    history: History
    now: datetime
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
