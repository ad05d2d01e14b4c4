"""The guard: composes the safety checks, in order, into one verdict per action.

Order: kill switch, allow-list, bounds, disruption budgets, circuit breakers
(provider degraded, fleet paused), quarantine and retry budget, dry run.
The first refusal wins and names its reason. The reconciler builds a fresh
`GuardContext` right before each action (the kill switch read from its backend
at that moment, so a flip mid-tick stops the rest of the tick) and records the
verdict. Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from jarvis.model import (
    Action,
    BlockReason,
    KillSwitchState,
    ResourceRef,
    ResourceState,
    RetryState,
    Verdict,
)
from jarvis.safety.allowlist import AllowList
from jarvis.safety.bounds import Bounds
from jarvis.safety.budgets import Budgets, Change
from jarvis.safety.retry import RetryBudget


@dataclass(frozen=True, slots=True)
class GuardContext:
    """What the guard may know about the world when it checks one action."""

    now: datetime
    killswitch: KillSwitchState
    """Engaged when its backend could not be read (fail-safe)."""
    retry: RetryState | None = None
    current: ResourceState | None = None
    applied_this_tick: int = 0
    touched: frozenset[str] = frozenset()
    dry_run: bool = False
    held: Verdict | None = None
    """An open circuit breaker's block (`jarvis.safety.breakers`), or None."""
    changes: Sequence[Change] = ()
    """Changes the budgets count: at least those of the longest budget window, this tick's too."""
    fleet: Sequence[ResourceRef] = ()
    """The resources last observed: what a budget's percentage is of."""


class Guard:
    def __init__(
        self,
        *,
        allowlist: AllowList,
        bounds: Bounds,
        retry: RetryBudget,
        budgets: Budgets | None = None,
    ) -> None:
        self.allowlist = allowlist
        self.bounds = bounds
        self.retry = retry
        self.budgets = budgets if budgets is not None else Budgets()

    def check(self, action: Action, ctx: GuardContext) -> Verdict:
        if ctx.killswitch.engaged:
            who = f" by {ctx.killswitch.actor}" if ctx.killswitch.actor else ""
            why = f": {ctx.killswitch.reason}" if ctx.killswitch.reason else ""
            return Verdict.block(BlockReason.KILLSWITCH, f"kill switch engaged{who}{why}")
        if not self.allowlist.permits(action):
            return Verdict.block(
                BlockReason.ALLOWLIST,
                f"no allow-list entry permits {action.kind} on {action.target}",
            )
        limited = self._limits(action, ctx)
        if limited is not None:
            return limited
        # An open breaker holds the action before its own budget is looked at.
        budget = ctx.held if ctx.held is not None else self.retry.check(ctx.retry, ctx.now)
        if not budget.allowed:
            return budget
        if ctx.dry_run:
            return Verdict.block(BlockReason.DRY_RUN, "dry run: evaluated, not applied")
        return Verdict.allow()

    def _limits(self, action: Action, ctx: GuardContext) -> Verdict | None:
        """The blast radius: this tick's bounds, then the disruption budgets' windows."""
        violation = self.bounds.violation(
            action,
            applied_this_tick=ctx.applied_this_tick,
            touched=ctx.touched,
            current=ctx.current,
        )
        if violation is not None:
            return Verdict.block(BlockReason.BOUNDS, violation)
        return self.budgets.check(action, ctx.changes, ctx.fleet, ctx.now)
