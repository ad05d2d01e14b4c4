"""The fleet-wide caps one intent is written under, with shards (`jarvis.store.fleetcap`).

The guard's pre-check counts the intents the replica has read from the store
(`jarvis.loop.budgets.ChangeLog`), which another replica may be writing at
that very instant. The applier (`jarvis.loop.apply`) therefore stages, with
each intent, the limits the guard just checked, to be counted again in the
transaction that writes it: the per-tick bound over the current tick window
(`jarvis.loop.peers.tick_window`) and each fleet-wide disruption budget in
force that the action matches, over its window. Per-resource bounds and
budgets need none of this: a resource belongs to one shard, so one replica.
The windows are reckoned from the intent's own time, so an intent is counted
in the window it is stored in.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from jarvis.loop.peers import tick_window
from jarvis.model import Action, BlockReason, ResourceRef
from jarvis.safety.bounds import Bounds
from jarvis.safety.budgets import Budgets, DisruptionBudget
from jarvis.store.fleetcap import Cap

__all__ = ["FleetCaps"]

_AT_WRITE = "; counted across replicas as the intent was written"


class FleetCaps:
    """Turns the guard's fleet-wide limits into the `Cap`s of one intent."""

    def __init__(self, bounds: Bounds, budgets: Budgets, window: timedelta) -> None:
        self.bounds = bounds
        self.budgets = budgets
        self.window = window
        """The loop interval: the per-tick bound's window."""

    def of(self, action: Action, at: datetime, fleet: Sequence[ResourceRef]) -> tuple[Cap, ...]:
        """The caps an intent of ``action`` stamped ``at`` must stay under."""
        start = tick_window(at, self.window)
        most = self.bounds.max_actions_per_tick
        caps = [
            Cap(
                BlockReason.BOUNDS,
                most,
                since=start,
                counts=lambda ts, _resource, _kind: ts >= start,
                detail=lambda _used: f"max {most} actions per tick reached{_AT_WRITE}",
            )
        ]
        for budget in self.budgets.budgets:
            if budget.per_resource or not budget.in_force(at):
                continue
            if budget.matches(action.target, action.kind):
                caps.append(_budget_cap(budget, budget.limit(fleet), at))
        return tuple(caps)


def _budget_cap(budget: DisruptionBudget, limit: int, at: datetime) -> Cap:
    edge = at - budget.window

    def counts(ts: datetime, resource: str, kind: str) -> bool:
        # As `DisruptionBudget.used`: younger than the window (a later stamp counts too).
        if ts <= edge:
            return False
        try:
            return budget.matches(ResourceRef.parse(resource), kind)
        except ValueError:
            return False

    return Cap(
        BlockReason.BUDGET,
        limit,
        since=edge,
        counts=counts,
        detail=lambda used: budget.spent(used, limit) + _AT_WRITE,
        kinds=None if "*" in budget.kinds else budget.kinds,
        provider=None if budget.provider == "*" else budget.provider,
    )
