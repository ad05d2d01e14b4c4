"""Recovery: closing the intents a previous process left open.

An `action.started` without an outcome means a process ended between calling
a provider and recording what it said. The reconciler's `start()` runs
`recover` (today in every process that builds a reconciler); each orphan
becomes an `action.unknown` event, counts as a failed attempt on the retry
ledger, and is escalated when that spends the budget. `close_orphan` is the
pure decision; `recover` reads the open intents and stages the ledger rows,
and the reconciler records the events and counts them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from jarvis.loop import events as ev
from jarvis.loop.ledger import RetryLedger
from jarvis.model import Event, Outcome, RetryState
from jarvis.safety.retry import RetryBudget

#: What an orphan counts as on the retry ledger.
UNKNOWN = Outcome.failure("outcome unknown: the process ended mid-apply")


@dataclass(frozen=True, slots=True)
class Recovered:
    """One orphaned intent, closed."""

    intent: Event
    events: tuple[Event, ...]
    """``action.unknown``, then ``action.escalated`` when the budget is spent."""
    state: RetryState
    """The ledger row after the failed attempt."""

    @property
    def escalated(self) -> bool:
        return len(self.events) > 1


def close_orphan(
    intent: Event, state: RetryState | None, budget: RetryBudget, now: datetime
) -> Recovered:
    """The events and ledger row that close ``intent``, given its pair's row ``state``."""
    unknown = ev.unknown_outcome(intent, now)
    base = state or RetryState(resource=intent.resource or "", action_kind=intent.action_kind or "")
    if intent.ts not in base.attempts:
        # The intent is the attempt's only record when the crash came before a flush.
        base = replace(base, attempts=(*base.attempts, intent.ts))
    after, escalate = budget.finished(base, UNKNOWN, now)
    if not escalate:
        return Recovered(intent, (unknown,), after)
    escalation = ev.escalated(
        intent.tick_id,
        now,
        intent,
        intent.action_id,
        attempts=after.consecutive_failures,
        error=after.last_error,
    )
    return Recovered(intent, (unknown, escalation), after)


def older_epoch(intent: Event, epoch: int) -> bool:
    """Written under an epoch before ``epoch``, or under none: the run that wrote it has
    stopped writing (fencing), so its open intent is an orphan."""
    written = intent.payload.get("epoch")
    return not isinstance(written, int) or written < epoch


async def recover(
    ledger: RetryLedger, now: datetime, stopped: Callable[[Event], bool] | None = None
) -> Sequence[Recovered]:
    """Close every open intent of a stopped run, oldest first, staging each ledger row.

    ``stopped`` says whether an intent's run has stopped (the elected leader
    passes "written under an older epoch"); by default every open intent is
    taken as orphaned, which only a single node that holds its database alone
    may assume. Orphans of one pair are closed in turn, each on the row the
    last one left.
    """
    closed: list[Recovered] = []
    for intent in await ledger.store.open_intents():
        if stopped is not None and not stopped(intent):
            continue
        key = (intent.resource or "", intent.action_kind or "")
        recovered = close_orphan(intent, ledger.get(key), ledger.budget, now)
        ledger.stage(recovered.state)
        closed.append(recovered)
    return closed
