"""The retry ledger as the loop holds it: one `RetryState` per (resource, action kind).

The reconciler (`jarvis.loop.reconciler`) owns one `RetryLedger`: the guard
reads it before each action, an apply stages an attempt and its outcome, and
recovery (`jarvis.loop.recovery`) stages the attempts a crash left open. The
decisions are pure functions of a state, the `RetryBudget` and the time
(`exhaustion`, `quarantined_count`, and the budget's own transitions); the
class keeps the in-memory copy and does the store I/O at its edges: staging
every change for the next flush, and re-reading the ledger once per tick.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

import structlog

from jarvis.model import Action, Health, Outcome, ResourceState, RetryState
from jarvis.safety.breakers import forgive
from jarvis.safety.retry import RetryBudget
from jarvis.store import EventStore

log = structlog.get_logger("jarvis.reconciler")

Key = tuple[str, str]


@dataclass(frozen=True, slots=True)
class Exhausted:
    """A budget spent without a failure that escalated: the pair to quarantine, and why."""

    state: RetryState
    """The ledger row after quarantine."""
    attempts: int
    reason: str


def exhaustion(
    budget: RetryBudget, state: RetryState | None, now: datetime, *, broken: bool = True
) -> Exhausted | None:
    """The quarantine an action blocked by its retry budget leads to; None while it may retry.

    This is how fixes that "succeed" without fixing escalate: every attempt
    of the window is spent though none failed, and the target is still
    ``broken``. A target that is not (a service scaled up three times in an
    hour to follow a surge, each scale doing what it asked) is only held by
    the budget until its window frees an attempt: nothing failed to fix, so
    there is nothing to page a human about.
    """
    if state is None or not broken or not budget.exhausted(state, now):
        return None
    attempts = len(budget.in_window(state, now))
    reason = f"{attempts} attempts in the window did not fix it"
    return Exhausted(budget.quarantine(state, now, reason), attempts, reason)


def still_broken(current: ResourceState | None) -> bool:
    """Whether a target whose budget is spent is still unhealthy as last observed.

    Unobserved counts as not broken: escalating needs evidence that the
    attempts did not fix it.
    """
    return current is not None and current.health is Health.UNHEALTHY


def quarantined_count(states: Mapping[Key, RetryState]) -> int:
    """Resources with at least one quarantined action kind."""
    return len({state.resource for state in states.values() if state.quarantined})


class RetryLedger:
    """The in-memory ledger, staged to the store on every change and refreshed each tick."""

    def __init__(self, store: EventStore, budget: RetryBudget) -> None:
        self.store = store
        self.budget = budget
        self._states: dict[Key, RetryState] = {}

    @property
    def states(self) -> Mapping[Key, RetryState]:
        """The whole ledger (what policies see as `History.retries`)."""
        return self._states

    def key(self, key: Key) -> Key:
        """``key`` as the store keys its row (`EventStore.ledger_resource`).

        Rows are re-read every tick: looked up by a name the store rewrote (a
        secret in it redacted), an action would find no row, so no backoff,
        attempt count or quarantine, ever.
        """
        return (self.store.ledger_resource(key[0]), key[1])

    def get(self, key: Key) -> RetryState | None:
        return self._states.get(self.key(key))

    @property
    def quarantined(self) -> int:
        return quarantined_count(self._states)

    def stage(self, state: RetryState) -> None:
        """Take ``state`` as the row for its key, here and in the store's next flush."""
        self._states[self.key((state.resource, state.action_kind))] = state
        self.store.stage_retry(state)

    def attempted(self, action: Action, now: datetime) -> RetryState:
        """Stage the attempt of ``action`` starting at ``now``; return the new row."""
        state = self.budget.attempted(self.get(action.key), str(action.target), action.kind, now)
        self.stage(state)
        return state

    def finished(
        self, state: RetryState, outcome: Outcome, now: datetime
    ) -> tuple[RetryState, bool]:
        """Stage the row after ``outcome``; return it and whether to escalate now."""
        state, escalate = self.budget.finished(state, outcome, now)
        self.stage(state)
        return state, escalate

    def forgive(self, key: Key, attempt: datetime, now: datetime, *, charged: bool) -> None:
        """Take back the failed attempt started at ``attempt`` (a degraded provider's fault)."""
        state = self.get(key)
        if state is not None:
            forgiven = forgive(state, attempt, now, charged=charged)
            if forgiven is not state:
                self.stage(forgiven)

    def revert(self, key: Key, prior: RetryState | None) -> None:
        """Undo an attempt staged but never made durable: ``key`` goes back to ``prior``."""
        if prior is not None:
            self.stage(prior)
            return
        self._states.pop(self.key(key), None)
        self.store.unstage_retry(*self.key(key))

    def undo(self, attempted: RetryState, prior: RetryState | None) -> None:
        """Take back an attempt made durable but never made: its row goes back to ``prior``.

        Unlike `revert`'s, the ``attempted`` row is already in the store, and
        rows are only ever upserted: with no ``prior`` it becomes an empty
        row, which every reader takes as no attempt at all.
        """
        empty = RetryState(resource=attempted.resource, action_kind=attempted.action_kind)
        self.stage(prior or empty)

    def exhaust(self, key: Key, now: datetime, *, broken: bool = True) -> Exhausted | None:
        """Quarantine ``key`` (staged) when its budget is spent on a target still ``broken``."""
        spent = exhaustion(self.budget, self.get(key), now, broken=broken)
        if spent is not None:
            self.stage(spent.state)
        return spent

    async def load(self) -> None:
        """Read the whole ledger from the store (at start; a failure is the caller's)."""
        self._states = await self.store.load_retries()

    async def refresh(self, flush: Callable[[], Awaitable[object]]) -> None:
        """Re-read the ledger, so `jarvis retries reset` from another process takes effect.

        Rows staged during an outage (there is a spool then) are written first
        with ``flush``, so the re-read is never older than this process's own;
        while the store stays down, the in-memory copy stands.
        """
        if self.store.journal_pending:
            await flush()
            if self.store.journal_pending:
                return
        try:
            states = await self.store.load_retries()
        except Exception as exc:  # noqa: BLE001 - a store outage must not stop the tick
            log.warning(
                "retry ledger unreadable; using the in-memory copy", error=self.store.explain(exc)
            )
            return
        log_resets(self._states, states)
        self._states = states


def log_resets(before: Mapping[Key, RetryState], after: Mapping[Key, RetryState]) -> None:
    """Log the rows another process cleared (`jarvis retries reset`), the lifted quarantines first.

    This process's own changes are already in ``before``, so a row that is
    gone, or no longer quarantined, after the re-read was reset elsewhere.
    """
    # A ledger of thousands of rows is re-read every tick, and nearly always
    # comes back as it was: one comparison in C answers that, and only what
    # is logged is sorted.
    if before == after:
        return
    cleared = [
        (key, state)
        for key, state in before.items()
        if (now := after.get(key)) is None or (state.quarantined and not now.quarantined)
    ]
    for key, state in sorted(cleared):
        now = after.get(key)
        if state.quarantined and (now is None or not now.quarantined):
            log.info("quarantine lifted", resource=key[0], action=key[1])
        elif now is None:
            log.info("retry record reset", resource=key[0], action=key[1])
