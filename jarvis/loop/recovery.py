"""Recovery: closing the intents a previous process left open.

An `action.started` without an outcome means a process ended between calling
a provider and recording what it said. The reconciler's `start()` runs
`recover` (today in every process that builds a reconciler). First the
actuator that owns the intent's (provider, kind) is asked, if it can tell for
certain (`jarvis.actuators.base.ConfirmsKeys`, through
`jarvis.loop.dispatch.Dispatcher.confirmed`), whether the change with the
intent's idempotency key was made: then the orphan is closed as
`action.applied` (``recovered``, the proof in its detail), a successful
attempt. Every other orphan becomes an `action.unknown` event, counts as a
failed attempt on the retry ledger, and is escalated when that spends the
budget; the loop goes on asking about it for a while
(`jarvis.loop.unknowns`). `close_orphan` is the pure decision; `recover` reads the open intents,
asks, and stages the ledger rows, and the reconciler records the events and
counts them.

The questions are the loop's own (`jarvis.loop.unknowns.ask_all`): at most
`QUESTIONS_AT_ONCE` in flight, none started past ``patience`` (the apply
timeout), so many orphans on a slow provider delay the first tick by about
twice the apply timeout, not by one question each in turn. That is more
patient than a tick, which keeps its questions to the observe timeout (they
must leave it time to apply): at start nothing else waits on them but the
first tick, and an orphan left unasked is charged a failure that can escalate
into a quarantine no later proof lifts. An orphan not
asked in time is closed unknown like one not proven, and the loop asks about
it from its first tick on: the attempt counts meanwhile (never applied twice),
and a quarantine its failure causes stays until an operator lifts it. `recover`
logs one warning then (``orphaned intents not asked about``) with how many
orphans were asked, proven and left unasked.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

import structlog

from jarvis.loop import events as ev
from jarvis.loop.ledger import RetryLedger
from jarvis.loop.unknowns import ask_all
from jarvis.model import Event, EventKind, Outcome, RetryState
from jarvis.safety.retry import RetryBudget

log = structlog.get_logger("jarvis.recovery")

#: What an orphan counts as on the retry ledger.
UNKNOWN = Outcome.failure("outcome unknown: the process ended mid-apply")


@dataclass(frozen=True, slots=True)
class Recovered:
    """One orphaned intent, closed."""

    intent: Event
    events: tuple[Event, ...]
    """``action.unknown``, then ``action.escalated`` when the budget is spent; or
    ``action.applied`` alone when the provider proved the change made."""
    state: RetryState
    """The ledger row after the attempt (failed, or applied)."""

    @property
    def escalated(self) -> bool:
        return len(self.events) > 1

    @property
    def applied(self) -> bool:
        """The provider proved the change made: closed as ``action.applied``."""
        return self.events[0].kind is EventKind.ACTION_APPLIED


def close_orphan(
    intent: Event,
    state: RetryState | None,
    budget: RetryBudget,
    now: datetime,
    proof: str | None = None,
) -> Recovered:
    """The events and ledger row that close ``intent``, given its pair's row ``state``;
    ``proof`` is what the provider said proves its change made, if it could."""
    base = state or RetryState(resource=intent.resource or "", action_kind=intent.action_kind or "")
    if intent.ts not in base.attempts:
        # The intent is the attempt's only record when the crash came before a flush.
        base = replace(base, attempts=(*base.attempts, intent.ts))
    if proof is not None:
        applied = ev.recovered_applied(intent, now, proof)
        after, _ = budget.finished(base, Outcome.success(proof), now)
        return Recovered(intent, (applied,), after)
    unknown = ev.unknown_outcome(intent, now)
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
    ledger: RetryLedger,
    now: datetime,
    stopped: Callable[[Event], bool] | None = None,
    confirm: Callable[[Event], Awaitable[str | None]] | None = None,
    *,
    patience: float = math.inf,
) -> Sequence[Recovered]:
    """Close every open intent of a stopped run, oldest first, staging each ledger row.

    ``stopped`` says whether an intent's run has stopped (the elected leader
    passes "written under an older epoch"); by default every open intent is
    taken as orphaned, which only a single node that holds its database alone
    may assume. ``confirm`` answers what proves an orphan's change made, or
    None (`Dispatcher.confirmed`); the orphans are asked together, bounded as
    the loop's questions are (`ask_all`, ``patience`` seconds). Orphans of one
    pair are closed in turn, each on the row the last one left. Orphans left unasked
    when the patience ran out are named in one warning.
    """
    orphans = [i for i in await ledger.store.open_intents() if stopped is None or stopped(i)]
    proofs: dict[str, str] = {}
    if confirm is not None:
        answers = await ask_all(orphans, confirm, patience)
        proofs = answers.proofs
        if answers.asked < len(orphans):
            _log_unasked(len(orphans), answers.asked, len(proofs), patience)
    closed: list[Recovered] = []
    for intent in orphans:
        key = (intent.resource or "", intent.action_kind or "")
        proof = proofs.get(intent.action_id or "")
        recovered = close_orphan(intent, ledger.get(key), ledger.budget, now, proof)
        ledger.stage(recovered.state)
        closed.append(recovered)
    return closed


def _log_unasked(orphans: int, asked: int, proven: int, patience: float) -> None:
    unasked = orphans - asked
    log.warning(
        "orphaned intents not asked about",
        orphans=orphans,
        asked=asked,
        proven=proven,
        unasked=unasked,
        detail=f"recovery asked about {asked} of {orphans} orphaned intents within its "
        f"{patience:g} s ({proven} proven applied); {unasked} were not asked in time and "
        "are closed unknown, counted as failed attempts: the loop asks about them from its "
        "first tick",
    )
