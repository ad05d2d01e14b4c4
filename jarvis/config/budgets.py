"""Settings for disruption budgets: the ``[[budgets]]`` list.

Read by the composition root (`jarvis.app.build_budgets`), which turns each
entry into a `jarvis.safety.DisruptionBudget`. Validation here catches what an
operator can get wrong in a file: both or neither of ``max`` and
``max_percent``, a percentage per resource, unknown time zones and day names,
two budgets with one name (the metric's label would merge them). Whether the
provider exists and acts on those kinds is checked against the provider
registry (`jarvis.providers.check_allowlist`), which config cannot see.
"""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import Field, model_validator

from jarvis.config.policies import Day, WallClock
from jarvis.config.sections import Section, TimeZone

__all__ = ["BudgetEntry", "BudgetHours", "BudgetSchedule"]


class BudgetHours(Section):
    """From ``start`` to ``end`` local time (past midnight when end <= start) on ``days``."""

    start: WallClock
    end: WallClock
    days: list[Day] = Field(default_factory=list)
    """Days on which the window starts; empty means every day."""

    @model_validator(mode="after")
    def _sensible(self) -> Self:
        if self.start == self.end:
            raise ValueError("start and end must differ")
        return self


class BudgetSchedule(Section):
    """When a budget is in force; outside every window it does not limit."""

    timezone: TimeZone = "UTC"
    hours: Annotated[list[BudgetHours], Field(min_length=1)]


class BudgetEntry(Section):
    """At most ``max`` (or ``max_percent`` of the matching fleet) changes per window."""

    name: Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$")]
    provider: Annotated[str, Field(min_length=1, pattern=r"^(\*|[a-z][a-z0-9_-]*)$")] = "*"
    resources: Annotated[str, Field(min_length=1)] = "*"
    """A shell-style glob over the resource path (the part after ``provider://``)."""
    actions: Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)] = Field(
        default_factory=lambda: ["*"]
    )
    max: Annotated[int | None, Field(ge=0, le=1_000_000)] = None
    max_percent: Annotated[float | None, Field(ge=0, le=100)] = None
    window_seconds: Annotated[float, Field(gt=0, le=31 * 86_400)] = 3600.0
    per: Literal["fleet", "resource"] = "fleet"
    schedule: BudgetSchedule | None = None

    @model_validator(mode="after")
    def _one_size(self) -> Self:
        if (self.max is None) == (self.max_percent is None):
            raise ValueError("set exactly one of max and max_percent")
        if self.per == "resource" and self.max_percent is not None:
            raise ValueError("a per-resource budget takes max, not max_percent")
        return self


def unique_names(entries: list[BudgetEntry]) -> list[BudgetEntry]:
    """The entries, or ValueError naming a name used twice."""
    seen: set[str] = set()
    for entry in entries:
        if entry.name in seen:
            raise ValueError(f"budget name {entry.name!r} is used twice")
        seen.add(entry.name)
    return entries
