"""Unknown outcomes, confirmed later: the provider asked again while the attempt still counts.

An apply recorded ``action.unknown`` (no answer within ``loop.apply_timeout``,
cut by the shutdown deadline, a Cloud Run or Kubernetes operation still running,
an answer lost after sending; or an orphan recovery could not prove) may have
made its change, and is charged to the retry budget as a failure. The
reconciler keeps each such intent in its `OpenUnknowns` while the attempt counts
in the retry budget's window (``retry.window_seconds`` from the intent's start,
an hour by default), and each tick asks, all at once and each at most once, the
actuator that owns it whether the change with the action's key was made: only an
actuator that `ConfirmsKeys` is asked (through
`jarvis.loop.dispatch.Dispatcher.confirmed`, recovery's question). No proof, or
a provider that cannot be read, leaves it open for the next tick; past the
window it is dropped, so a provider that never proves anything is asked a
bounded number of times. The tick asks while it observes (both only read the
providers) and keeps its questions to the observe's own budget: at most
`QUESTIONS_AT_ONCE` are in flight, none starts once the ``patience``
(``loop.observe_timeout``) has passed, and those still in flight then are cut,
unproven. So a provider that hangs costs a tick one observe timeout, however
many unknowns are open, and the tick keeps its apply timeout for its actions
(before, the questions came first and took up to twice the apply timeout, and
with a tick timeout of observe + apply every tick was cut before it applied
anything, on every provider, for as long as the unknowns stayed in the window).
Those not asked, or cut, wait for the next tick (the oldest are asked first).
`ask_all` is those questions, which recovery asks of orphaned intents at start
too, with a patience of its own. With shards, only the replica that holds the
resource's shard asks (``owns``). The open unknowns are read back from the
store when a process starts the loop or takes the lead, and when a one-shot
command (`jarvis tick`, an override) acts as the writer (`load`), so its tick
asks too; a dry run or `jarvis plan` reads none back and asks nothing.

A proof closes it (`confirm`, pure): ``action.applied`` for the same action id
(`jarvis.loop.events.confirmed_applied`), and on the retry ledger the attempt
counts as a success: the consecutive failures are reset as an applied outcome
would have reset them (failures of attempts started after it still count). A
pair already quarantined stays so: the event says the quarantine is the
operator's to lift (`jarvis retries reset`). The breakers keep the timeout they
counted: the provider did not answer in time, whatever it did.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

import anyio

from jarvis.loop import events as ev
from jarvis.loop.ledger import RetryLedger
from jarvis.model import Event, EventKind, Outcome, RetryState
from jarvis.safety.retry import RetryBudget
from jarvis.store import EventStore

__all__ = ["Answers", "Confirmed", "OpenUnknowns", "ask_all", "confirm"]

Ask = Callable[[Event], Awaitable[str | None]]

QUESTIONS_AT_ONCE = 8
"""How many providers' answers one tick, or recovery at start, waits for at once (`ask_all`)."""


@dataclass(slots=True)
class Answers:
    """What `ask_all` found: the proofs, by action id, and how many questions it started."""

    proofs: dict[str, str] = field(default_factory=dict)
    """An intent not asked, or not proven, is simply absent."""
    asked: int = 0
    """Questions started before the patience ran out (answered, failed or cut alike)."""


async def ask_all(
    intents: Sequence[Event], ask: Ask, patience: float, *, cut: bool = False
) -> Answers:
    """Ask whether each of ``intents`` was applied: the proofs found, by action id.

    At most `QUESTIONS_AT_ONCE` questions are in flight, started in the order
    given (oldest first), and none starts once ``patience`` seconds have passed:
    a provider that hangs costs about ``patience`` plus one question's own bound
    (`Dispatcher.confirmed`: the apply timeout), however many intents there are;
    with ``cut``, ``patience`` alone, the questions still in flight then cut
    unproven (a tick's, which must leave it time to apply). The intents not asked
    are ``len(intents) - asked``.
    """
    answers = Answers()
    if not intents:
        return answers
    limiter = anyio.CapacityLimiter(QUESTIONS_AT_ONCE)
    until = anyio.current_time() + patience

    async def question(intent: Event) -> None:
        async with limiter:
            if anyio.current_time() >= until:
                return  # the questions took their time: this one waits for a later ask
            answers.asked += 1
            proof = await ask(intent)
        if proof is not None:
            answers.proofs[intent.action_id or ""] = proof

    # A proof found before the cut is kept: each is noted as it comes.
    with anyio.CancelScope(deadline=until if cut else math.inf):
        async with anyio.create_task_group() as group:
            for intent in intents:
                group.start_soon(question, intent)
    return answers


@dataclass(frozen=True, slots=True)
class Confirmed:
    """An intent closed as unknown whose change the provider proved made."""

    intent: Event
    event: Event
    """The ``action.applied`` that confirms it."""
    state: RetryState | None
    """Its pair's ledger row after the attempt counts as a success; None: left as it was
    (quarantined, or no row)."""


def confirm(
    intent: Event, state: RetryState | None, budget: RetryBudget, now: datetime, proof: str
) -> Confirmed:
    """The event and ledger row that confirm ``intent``, given its pair's row ``state``."""
    quarantined = state is not None and state.quarantined
    event = ev.confirmed_applied(intent, now, proof, quarantined=quarantined)
    if state is None or quarantined:
        return Confirmed(intent, event, None)
    return Confirmed(intent, event, _succeeded(state, intent.ts, budget, now, proof))


def _succeeded(
    state: RetryState, attempt: datetime, budget: RetryBudget, now: datetime, proof: str
) -> RetryState:
    """``state`` with the attempt started at ``attempt`` counted a success, not a failure."""
    later = sum(1 for t in state.attempts if t > attempt)
    if not later:
        return budget.finished(state, Outcome.success(proof), now)[0]
    # Only the attempts since could still be failing in a row; their backoff stands.
    failures = min(state.consecutive_failures, later)
    return replace(state, consecutive_failures=failures, updated_at=now)


class OpenUnknowns:
    """The intents closed as unknown that the loop still asks about; see the module docstring."""

    def __init__(
        self,
        ledger: RetryLedger,
        ask: Ask,
        confirms: Callable[[Event], bool],
        *,
        patience: float,
    ) -> None:
        self.ledger = ledger
        self._ask = ask
        self._confirms = confirms
        """Whether an intent's actuator can be asked at all (`Dispatcher.confirms`)."""
        self.patience = patience
        """Seconds a tick's questions may take, all of them (``loop.observe_timeout``)."""
        self._open: dict[str, Event] = {}

    @property
    def pending(self) -> bool:
        """Whether any unknown is open: a tick then asks while it observes."""
        return bool(self._open)

    @property
    def open(self) -> Sequence[Event]:
        """The intents still asked about, oldest first."""
        if not self._open:  # nearly every tick: no sort, no key function built
            return []
        return sorted(self._open.values(), key=lambda intent: intent.ts)

    def opened(self, intent: Event) -> None:
        """``intent`` was closed as unknown: ask about it from the next tick on."""
        if intent.action_id is not None and self._confirms(intent):
            self._open[intent.action_id] = intent

    async def load(self, store: EventStore, now: datetime) -> None:
        """Take the unknowns the store holds whose attempt is in the window and not confirmed."""
        self._open = {}
        since = now - self.ledger.budget.window
        unknown = await store.events_by_time(kinds=[EventKind.ACTION_UNKNOWN.value], since=since)
        if not unknown:
            return
        kinds = [EventKind.ACTION_STARTED.value, EventKind.ACTION_APPLIED.value]
        for intent in _unconfirmed(unknown, await store.events_by_time(kinds=kinds, since=since)):
            self.opened(intent)

    async def ask(self, now: datetime, owns: Callable[[str], bool] | None) -> list[Confirmed]:
        """Ask once about each open unknown this replica ``owns`` (None: all); close and
        stage (ledger) each one proven, oldest first, each on the row the last one left."""
        if not self._open:
            return []
        horizon = now - self.ledger.budget.window
        self._open = {key: i for key, i in self._open.items() if i.ts > horizon}
        due = [i for i in self.open if owns is None or owns(i.resource or "")]
        proofs = (await ask_all(due, self._ask, self.patience, cut=True)).proofs
        closed: list[Confirmed] = []
        for intent in due:
            proof = proofs.get(intent.action_id or "")
            if proof is None:
                continue
            key = (intent.resource or "", intent.action_kind or "")
            confirmed = confirm(intent, self.ledger.get(key), self.ledger.budget, now, proof)
            if confirmed.state is not None:
                self.ledger.stage(confirmed.state)
            del self._open[intent.action_id or ""]
            closed.append(confirmed)
        return closed


def _unconfirmed(unknown: Iterable[Event], others: Iterable[Event]) -> list[Event]:
    """The intents of ``unknown`` outcomes that ``others`` hold and no ``action.applied`` closed."""
    intents: dict[str, Event] = {}
    applied: set[str] = set()
    for event in others:
        if event.action_id is None:
            continue
        if event.kind is EventKind.ACTION_APPLIED:
            applied.add(event.action_id)
        else:
            intents[event.action_id] = event
    ids = {event.action_id for event in unknown} - applied
    return [intent for action_id, intent in intents.items() if action_id in ids]
