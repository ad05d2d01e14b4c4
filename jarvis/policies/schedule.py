"""Time windows in a named time zone that change a service's replica bounds.

Used by the scaling policy (`jarvis.policies.scaling`) to lower the floor at
night and raise it before morning traffic. The wall-clock arithmetic is the
model's `Hours` (`jarvis.model.hours`), which disruption budgets use too. Pure:
the caller passes ``now`` (timezone-aware).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time

from jarvis.model.hours import DAY_NAMES, Hours, WeeklyHours, parse_days, parse_time

__all__ = ["DAY_NAMES", "Schedule", "ScheduleWindow", "parse_days", "parse_time"]


@dataclass(frozen=True, slots=True)
class ScheduleWindow:
    """From ``start`` to ``end`` local time, the bounds become ``min``/``max``.

    A window whose end is not after its start runs past midnight (22:00-06:00).
    ``days`` are the weekdays (0 = Monday) on which the window *starts*; empty
    means every day. ``None`` bounds leave the rule's own bound in force.
    """

    start: time
    end: time
    min_replicas: int | None = None
    max_replicas: int | None = None
    days: frozenset[int] = frozenset()
    hours: Hours = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.start == self.end:
            raise ValueError("a schedule window needs different start and end times")
        if self.min_replicas is None and self.max_replicas is None:
            raise ValueError("a schedule window must set min_replicas or max_replicas")
        if any(day not in range(7) for day in self.days):
            raise ValueError(f"schedule days must be 0 (Monday) to 6, got {sorted(self.days)}")
        object.__setattr__(self, "hours", Hours(self.start, self.end, self.days))

    def contains(self, local: datetime) -> bool:
        """Whether the local wall-clock time ``local`` falls inside this window."""
        return self.hours.contains(local)

    def describe(self) -> str:
        return self.hours.describe()


@dataclass(frozen=True, slots=True)
class Schedule:
    """A rule's windows and the zone they are written in; the first active window wins."""

    timezone: str = "UTC"
    windows: tuple[ScheduleWindow, ...] = ()
    _weekly: WeeklyHours = field(init=False, repr=False, compare=False)
    """The same windows as the model's `WeeklyHours`, which disruption budgets use too."""

    def __post_init__(self) -> None:
        # WeeklyHours raises ZoneInfoNotFoundError on a bad name, at construction.
        weekly = WeeklyHours(self.timezone, tuple(window.hours for window in self.windows))
        object.__setattr__(self, "_weekly", weekly)

    def active(self, now: datetime) -> ScheduleWindow | None:
        """The first window containing ``now`` (aware) in this schedule's zone, if any."""
        hit = self._weekly.active(now)
        if hit is None:
            return None
        return next(window for window in self.windows if window.hours is hit)
