"""Apply one action as one shielded unit: intent, provider call, outcome.

The reconciler decides (`jarvis.loop.reconciler`); this module carries out
one allowed action and keeps the promises around it:

- the intent and the attempt on the retry ledger are durable (committed, or
  in the fsynced spool) before the provider is called, so a crash between the
  two leaves a visible, reconcilable `action.started`, and a restart counts
  the attempt; when they cannot be, nothing is applied (`store_unavailable`);
- a leader whose fence fails applies nothing and steps down (`LeaseLostError`);
- a tick timeout or a shutdown never cuts the unit in half: it runs shielded,
  bounded by the store's statement timeout and the dispatcher's apply deadline;
- the provider breakers and the disruption budgets learn of the attempt, and
  a degraded provider's failure is not charged to the resource's retry budget.
"""

from __future__ import annotations

import anyio
import structlog

from jarvis.loop import events as ev
from jarvis.loop.breakers import Breakers
from jarvis.loop.budgets import ChangeLog
from jarvis.loop.dispatch import Dispatcher
from jarvis.loop.ledger import RetryLedger
from jarvis.loop.record import Recorder
from jarvis.loop.report import TickReport
from jarvis.model import Action, Clock, ErrorKind, Outcome
from jarvis.store import EventStore, LeaseLostError, StoreError

__all__ = ["Applier"]

log = structlog.get_logger("jarvis.reconciler")


class Applier:
    """Applies what the guard allowed, one shielded unit per action."""

    def __init__(
        self,
        *,
        clock: Clock,
        store: EventStore,
        ledger: RetryLedger,
        recorder: Recorder,
        dispatcher: Dispatcher,
        breakers: Breakers,
        changes: ChangeLog,
    ) -> None:
        self.clock = clock
        self.store = store
        self.ledger = ledger
        self.recorder = recorder
        self.dispatcher = dispatcher
        self.breakers = breakers
        self.changes = changes

    async def apply(self, action: Action, report: TickReport) -> Outcome | None:
        """Apply ``action``; None when its intent could not be made durable (nothing applied)."""
        with anyio.CancelScope(shield=True):
            outcome = await self._unit(action, report)
        return outcome  # noqa: RET504 - outside the scope: mypy reads a scope as able to swallow

    async def _unit(self, action: Action, report: TickReport) -> Outcome | None:
        tick_id = report.tick_id
        action_id = ev.action_id_for(tick_id, action)
        start = self.clock.now()
        prior = self.ledger.get(action.key)
        state = self.ledger.attempted(action, start)
        intent = ev.started(tick_id, start, action, action_id)
        self.recorder.record(intent)
        try:
            await self.flush()
        except LeaseLostError:
            # The store dropped the intent and the ledger row (a deposed leader
            # may not act); the scheduler steps down.
            self.ledger.revert(action.key, prior)
            raise
        except StoreError as exc:
            log.warning("intent not durable; action not taken", error=str(exc))
            self.store.retract(intent.idempotency_key)
            self.ledger.revert(action.key, prior)
            return None
        self.breakers.probing(action, start)
        self.changes.note(action, start, action_id)
        structlog.contextvars.bind_contextvars(resource=str(action.target))
        outcome = await self.dispatcher.apply(action, ev.idempotency_key(action_id))
        now = self.clock.now()
        self.recorder.outcome(tick_id, now, action, outcome)
        if self.breakers.settle(action, outcome, start, now):
            state, escalate = self.ledger.finished(state, outcome, now)
        else:
            # A degraded provider's failure: not the resource's, so not its budget's.
            self.ledger.forgive(action.key, start, now, charged=False)
            escalate = False
        if escalate:
            terminal = outcome.error_kind is ErrorKind.TERMINAL
            attempts, error = state.consecutive_failures, outcome.detail
            self.recorder.escalated(
                report, now, action, attempts=attempts, error=error, terminal=terminal
            )
        await self.flush()
        return outcome

    async def flush(self) -> None:
        await self.recorder.flush(self.clock.now())
