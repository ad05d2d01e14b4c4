"""Disruption budgets: at most N (or X%) changes of a kind per time window.

Bounds cap one tick; a budget caps a window, so Jarvis cannot restart a third
of the fleet over ten minutes one tick at a time. Modelled on Karpenter's
NodePool disruption budgets (a count or a percentage of the matching fleet,
percentages rounded up, optionally only on a schedule) and Shoreline's
per-hour action limits.

A `DisruptionBudget` matches actions by provider, kind and resource glob, and
counts `Change`s: the actions the guard let through to their provider (each
recorded as an ``action.started`` intent) that may have disrupted: applied,
unknown or failed (a restart that then fails may still have disrupted), but
not one closed withheld (never sent) or gone (its target deleted since
observe: nothing to disrupt), `jarvis.model.Event.changed_nothing`. A change counts while it is
younger than the window: one made exactly ``window`` ago is outside, as
Kubernetes treats a stabilization window. The loop (`jarvis.loop.budgets`)
rebuilds the changes from the event store at start, so a restart does not
reset a budget. Fleet-wide budgets count every matching change; per-resource
ones count the action's own target only. A budget with a schedule holds only
inside it ("no restarts of production during business hours" is ``max = 0``
with a schedule); outside, it does not limit. Pure: no I/O, no clock.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from jarvis.model import Action, BlockReason, ResourceRef, Verdict, globs
from jarvis.model.hours import WeeklyHours

__all__ = ["Budgets", "Change", "DisruptionBudget", "Remaining"]


@dataclass(frozen=True, slots=True)
class Change:
    """One action the guard let through to its provider: what budgets count."""

    ts: datetime
    target: ResourceRef
    kind: str
    action_id: str | None = None
    """The action's id: one change however many times it is read back from the store."""


@dataclass(frozen=True, slots=True)
class Remaining:
    """How much of one budget is left, at one moment, labelled with one kind it counts."""

    budget: str
    provider: str
    kind: str
    limit: int | None
    """None while the budget's schedule is not in force (it does not limit then)."""
    used: int
    """Changes in the window; for a per-resource budget, those of its busiest resource."""

    @property
    def remaining(self) -> int | None:
        return None if self.limit is None else max(0, self.limit - self.used)


@dataclass(frozen=True, slots=True)
class DisruptionBudget:
    name: str
    window: timedelta
    max_changes: int | None = None
    max_percent: float | None = None
    """Of the resources in the snapshot that match ``provider`` and ``resources``; rounded up."""
    provider: str = "*"
    kinds: frozenset[str] = frozenset({"*"})
    resources: str = "*"
    """A glob over the resource path (the part after ``provider://``), `jarvis.model.globs`:
    its ``*`` crosses ``/``."""
    per_resource: bool = False
    schedule: WeeklyHours | None = None
    """When set, the budget limits only while a window of the schedule holds."""

    def __post_init__(self) -> None:
        if (self.max_changes is None) == (self.max_percent is None):
            raise ValueError("a disruption budget needs exactly one of max_changes, max_percent")
        if self.window <= timedelta(0):
            raise ValueError("a disruption budget needs a positive window")
        if self.per_resource and self.max_percent is not None:
            raise ValueError("a per-resource budget takes max_changes, not max_percent")

    def covers(self, target: ResourceRef) -> bool:
        return (self.provider in ("*", target.provider)) and globs.matches(
            target.name, self.resources
        )

    def matches(self, target: ResourceRef, kind: str) -> bool:
        return ("*" in self.kinds or kind in self.kinds) and self.covers(target)

    def in_force(self, now: datetime) -> bool:
        return self.schedule is None or self.schedule.active(now) is not None

    def limit(self, fleet: Sequence[ResourceRef]) -> int:
        """N, or X% of the matching fleet rounded up (as Karpenter rounds)."""
        if self.max_changes is not None:
            return self.max_changes
        size = sum(1 for ref in fleet if self.covers(ref))
        percent = self.max_percent or 0.0
        # A hair under the exact product, so 10% of 30 is 3, not 4 through float error.
        return math.ceil(size * percent / 100 - 1e-9)

    def used(
        self,
        changes: Iterable[Change],
        now: datetime,
        *,
        target: ResourceRef | None = None,
    ) -> int:
        """Matching changes younger than the window (on ``target`` only, if given).

        A change stamped after ``now`` (the clock stepped back since) counts: it
        is recent by any reading, and a budget must not refill on a clock jump.
        """
        since = now - self.window
        return sum(
            1
            for c in changes
            if c.ts > since
            and (target is None or _same_resource(c.target, target))
            and self.matches(c.target, c.kind)
        )

    def spent(self, used: int, limit: int, target: ResourceRef | None = None) -> str:
        """Why an action is held: ``used`` of ``limit`` changes (on ``target``, if per resource)."""
        whose = f" on {target}" if target is not None else ""
        return (
            f"disruption budget {self.name!r} spent{whose}: {used} of {limit} "
            f"changes in the last {self.window} ({self.describe()})"
        )

    def describe(self) -> str:
        size = f"{self.max_changes}" if self.max_changes is not None else f"{self.max_percent:g}%"
        scope = "per resource" if self.per_resource else "fleet-wide"
        kinds = ",".join(sorted(self.kinds))
        return f"{size} {kinds} on {self.provider}://{self.resources} per {self.window} {scope}"


def _same_resource(a: ResourceRef, b: ResourceRef) -> bool:
    """Whether ``a`` and ``b`` are one resource: the same URI, whatever their kind label.

    An intent read back from the store names no kind (a Deployment's ``k8s://``
    ref reads back as kind "service"), and a restart of Jarvis must not refill
    a per-resource budget.
    """
    return a.provider == b.provider and a.name == b.name


class Budgets:
    """Every configured budget; an action is held when any budget matching it is spent."""

    def __init__(self, budgets: Iterable[DisruptionBudget] = ()) -> None:
        self._budgets = tuple(budgets)

    @property
    def budgets(self) -> tuple[DisruptionBudget, ...]:
        return self._budgets

    @property
    def horizon(self) -> timedelta:
        """The longest window: how far back the loop must remember changes."""
        return max((b.window for b in self._budgets), default=timedelta(0))

    def check(
        self,
        action: Action,
        changes: Sequence[Change],
        fleet: Sequence[ResourceRef],
        now: datetime,
    ) -> Verdict | None:
        """A `budget` block when applying ``action`` now would overspend a budget, else None."""
        for budget in self._budgets:
            if not budget.matches(action.target, action.kind) or not budget.in_force(now):
                continue
            limit = budget.limit(fleet)
            used = budget.used(changes, now, target=action.target if budget.per_resource else None)
            if used >= limit:
                whose = action.target if budget.per_resource else None
                return Verdict.block(BlockReason.BUDGET, budget.spent(used, limit, whose))
        return None

    def remaining(
        self, changes: Sequence[Change], fleet: Sequence[ResourceRef], now: datetime
    ) -> list[Remaining]:
        """One row per budget and kind it names (``*`` for all kinds), for metrics and the CLI."""
        rows: list[Remaining] = []
        for budget in self._budgets:
            limit = budget.limit(fleet) if budget.in_force(now) else None
            if budget.per_resource:
                targets = {
                    str(c.target): c.target for c in changes if budget.matches(c.target, c.kind)
                }
                used = max(
                    (budget.used(changes, now, target=t) for t in targets.values()), default=0
                )
            else:
                used = budget.used(changes, now)
            # The kinds of one budget share its count: one row each, for the metric's label.
            rows.extend(
                Remaining(budget.name, budget.provider, kind, limit, used)
                for kind in sorted(budget.kinds)
            )
        return rows
