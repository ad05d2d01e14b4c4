"""Weekly wall-clock windows in a named time zone: "09:00-17:00 mon-fri, Europe/Berlin".

Shared by the scaling policy's schedules (`jarvis.policies.schedule`), which
change a service's replica bounds inside a window, and by disruption budgets
(`jarvis.safety.budgets`), which hold only inside theirs. Pure: the caller
passes ``now`` (timezone-aware); the zone database is the standard `zoneinfo`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time
from zoneinfo import ZoneInfo

#: Day names as written in configuration, Monday first (``datetime.weekday()`` order).
DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True, slots=True)
class Hours:
    """From ``start`` to ``end`` local time on ``days`` (0 = Monday; empty: every day).

    A window whose end is not after its start runs past midnight (22:00-06:00);
    ``days`` are then the days on which it *starts*.
    """

    start: time
    end: time
    days: frozenset[int] = frozenset()

    def __post_init__(self) -> None:
        if self.start == self.end:
            raise ValueError("a time window needs different start and end times")
        if any(day not in range(7) for day in self.days):
            raise ValueError(f"days must be 0 (Monday) to 6, got {sorted(self.days)}")

    def contains(self, local: datetime) -> bool:
        """Whether the local wall-clock time ``local`` falls inside this window."""
        clock = local.time().replace(tzinfo=None)
        weekday = local.weekday()
        if self.start < self.end:
            return self.start <= clock < self.end and self._on(weekday)
        # Past midnight: the evening part belongs to today's start, the morning
        # part to yesterday's.
        if clock >= self.start:
            return self._on(weekday)
        return clock < self.end and self._on((weekday - 1) % 7)

    def describe(self) -> str:
        days = ",".join(DAY_NAMES[day] for day in sorted(self.days)) if self.days else "daily"
        return f"{self.start:%H:%M}-{self.end:%H:%M} {days}"

    def _on(self, weekday: int) -> bool:
        return not self.days or weekday in self.days


@dataclass(frozen=True, slots=True)
class WeeklyHours:
    """Windows and the zone they are written in; ``now`` is inside when any window holds it."""

    timezone: str = "UTC"
    windows: tuple[Hours, ...] = ()

    def __post_init__(self) -> None:
        ZoneInfo(self.timezone)  # raises ZoneInfoNotFoundError on a bad name, at construction

    def active(self, now: datetime) -> Hours | None:
        """The first window containing ``now`` (aware) in this zone, if any."""
        if not self.windows:
            return None
        local = now.astimezone(ZoneInfo(self.timezone))
        for window in self.windows:
            if window.contains(local):
                return window
        return None


def parse_time(value: str | time) -> time:
    """``"06:00"`` or ``"06:00:30"`` (or a `time` already) as a naive `time`."""
    if isinstance(value, time):
        return value.replace(tzinfo=None)
    return time.fromisoformat(value)


def parse_days(values: Sequence[str | int]) -> frozenset[int]:
    """Day names (``"mon"``) or numbers (0 = Monday) as weekday numbers."""
    days: set[int] = set()
    for value in values:
        if isinstance(value, int):
            days.add(value)
            continue
        name = value.strip().lower()[:3]
        if name not in DAY_NAMES:
            raise ValueError(f"unknown day {value!r}; expected one of {', '.join(DAY_NAMES)}")
        days.add(DAY_NAMES.index(name))
    return frozenset(days)
