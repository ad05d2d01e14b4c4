"""Overrides from the status page, applied by the daemon's own next tick.

The page's restart, rollback and scale must pass the same guard as every
other action, and inside the daemon they must not run a second tick beside
the scheduler's: two ticks at once would read the kill switch, the ledger and
the budgets' change log each on its own and could both spend the same last
change of a budget. So the page does not tick. It queues the action here;
`OverrideQueue` is also a policy, the last the reconciler evaluates, and
proposes what is queued in the scheduler's next tick (woken at once rather
than at the next boundary). That tick plans it (an operator's action
outranks a policy's for the same resource), guards it with the tick's own
kill-switch read, allow-list, bounds, quarantine and budgets, applies and
records it with the operator as actor; one naming no resource the tick
observed (while its own provider answered) is refused there, as `jarvis restart`
refuses it, rather than sent, and so are a kind no provider applies on the
resource's scheme, one of a resource its provider answered is not there, and a
rollback naming no version of a resource whose provider reports none before
the current one (`settled`, which names that
version otherwise). After the tick the scheduler's hook
(`settle`) hands each waiting page request the verdict or the outcome.

Delivery is at most once: an action the next tick does not take within the
page's wait is withdrawn (nothing done, and the page says so), and one taken
by a tick that fails or times out is never proposed again (the page points
at the recorded events). A replica that does not lead queues nothing: its
scheduler does not tick, so the page sends the operator to the leader.

Unlike the other policies this one holds state (the queue); it does no I/O
and reads no clock, and evaluating it twice in a tick is not possible, since
only the reconciler calls it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

import anyio

from jarvis.loop.report import Decision, TickReport
from jarvis.loop.scheduler import TickResult
from jarvis.model import GONE_LABEL, Action, History, Snapshot
from jarvis.policies.base import Evaluation
from jarvis.policies.operator import OPERATOR, nobody_has, settled, unknown
from jarvis.telemetry.web.view import OverrideResult

__all__ = ["OverrideQueue", "describe"]


@dataclass(eq=False, slots=True)
class _Pending:
    action: Action
    done: anyio.Event = field(default_factory=anyio.Event)
    result: OverrideResult | None = None

    def resolve(self, result: OverrideResult) -> None:
        self.result = result
        self.done.set()


def describe(decision: Decision) -> OverrideResult:
    """A decision as one line for the operator: applied, blocked (why), gone (its target
    deleted since observed, `Outcome.gone`: no failure) or failed (how)."""
    action = decision.action
    what = f"{action.kind} {action.target}"
    outcome = decision.outcome
    if outcome is not None:
        if outcome.ok:
            return OverrideResult("applied", f"{what}: applied. {outcome.detail}".strip())
        if outcome.gone:
            return OverrideResult("gone", f"{what}: {GONE_LABEL}. {outcome.detail}".strip())
        return OverrideResult("failed", f"{what}: {outcome.status.value}. {outcome.detail}".strip())
    verdict = decision.verdict
    reason = verdict.reason.value if verdict.reason else "unknown"
    return OverrideResult("blocked", f"{what}: blocked ({reason}). {verdict.detail}".strip())


class OverrideQueue:
    """Actions queued by the page, proposed by the next tick; see the module docstring."""

    name = OPERATOR

    def __init__(
        self,
        *,
        wait: float,
        leading: Callable[[], bool] = lambda: True,
        wake: Callable[[], None] = lambda: None,
        schemes: Mapping[str, frozenset[str]] | None = None,
    ) -> None:
        self.wait = wait
        self.schemes = schemes
        """Each scheme some provider acts on, with its kinds (`settled`); None: not checked."""
        """Seconds a page request waits for the tick that decides its action."""
        self.leading = leading
        """Whether this replica leads (the daemon sets it once its elector exists)."""
        self.wake = wake
        """Wakes the scheduler (the daemon sets it once the scheduler exists)."""
        self._queued: list[_Pending] = []
        self._taken: list[_Pending] = []

    def evaluate(self, snapshot: Snapshot, history: History, now: datetime) -> Evaluation:  # noqa: ARG002 - the Policy protocol
        taken, self._queued = self._queued, []
        proposed: list[Action] = []
        for pending in taken:
            uri = str(pending.action.target)
            if nobody_has(pending.action.target, snapshot):
                # As `jarvis restart` refuses it: sent, a typo would fail as terminal,
                # page on-call and quarantine the name for whatever later takes it.
                pending.resolve(OverrideResult("refused", unknown(uri, snapshot)))
                continue
            action = settled(pending.action, snapshot, self.schemes)
            if isinstance(action, str):
                pending.resolve(OverrideResult("refused", action))
                continue
            pending.action = action
            self._taken.append(pending)
            proposed.append(pending.action)
        return Evaluation(actions=tuple(proposed))

    async def before_tick(self, now: datetime) -> bool:  # noqa: ARG002 - the TickHooks protocol
        return True

    async def after_tick(self, result: TickResult) -> bool:
        self.settle(result.report)
        return True

    def settle(self, report: TickReport | None) -> None:
        """Give each action the last tick took its decision (or say the tick did not finish)."""
        taken, self._taken = self._taken, []
        decisions = [] if report is None else report.decisions
        for pending in taken:
            found = next((d for d in decisions if d.action is pending.action), None)
            if found is not None:
                pending.resolve(describe(found))
            else:
                pending.resolve(
                    OverrideResult(
                        "failed",
                        f"{pending.action.kind} {pending.action.target}: the tick that took it "
                        "did not finish; see the recent events for what was recorded",
                    )
                )

    async def submit(self, action: Action) -> OverrideResult:
        """Queue ``action`` for the next tick and wait (``wait`` s at most) for its decision."""
        if not self.leading():
            return OverrideResult(
                "refused",
                "this replica does not lead the loop; open the leader's page (see Leader)",
            )
        pending = _Pending(action)
        self._queued.append(pending)
        self.wake()
        with anyio.move_on_after(self.wait):
            await pending.done.wait()
        if pending.result is not None:
            return pending.result
        if pending in self._queued:
            self._queued.remove(pending)
            return OverrideResult(
                "refused",
                f"no tick took it within {self.wait:g} s; it was withdrawn and nothing was done",
            )
        return OverrideResult(
            "pending",
            f"{action.kind} {action.target}: proposed to the tick in flight; "
            "its outcome will appear in the recent events",
        )
