"""Apply one action as one shielded unit: intent, provider call, outcome.

The reconciler decides (`jarvis.loop.reconciler`); this module carries out
one allowed action and keeps the promises around it:

- the intent and the attempt on the retry ledger are durable (committed, or
  in the fsynced spool) before the provider is called, so a crash between the
  two leaves a visible, reconcilable `action.started`, and a restart counts
  the attempt; when they cannot be, nothing is applied (`store_unavailable`);
- the kill switch is read again once the intent is durable: an engage that
  landed while the intent was written (a slow database, a lock, the spool)
  stops the action there. Its intent is closed at once by an outcome that
  says so (`Outcome.withheld`), its attempt is not charged, and the tick
  reports it blocked by the kill switch;
- a leader whose fence fails applies nothing and steps down (`LeaseLostError`);
- with shards, an intent that would exceed a fleet-wide cap, counted in the
  transaction that writes it (`jarvis.loop.fleetcap`), is not written: the
  action is blocked with the cap's reason and its attempt is not charged;
- a tick timeout or a shutdown never cuts the unit in half: it runs shielded,
  bounded by the store's statement timeout and the dispatcher's apply deadline,
  and after a stop request by the shutdown deadline (`jarvis.loop.shutdown`):
  an intent not durable by then is not acted on, an outcome not written by
  then stays buffered for the daemon to spool;
- the provider breakers and the disruption budgets learn of the attempt, and
  a degraded provider's failure is not charged to the resource's retry budget;
- an outcome recorded unknown (`Outcome.timed_out`) is handed to the loop's
  `jarvis.loop.unknowns.OpenUnknowns`, which asks the provider about it in the
  ticks that follow;
- a target the provider answered is gone (`Outcome.gone`: deleted since
  observe) is recorded failed and nothing more: no breaker counts it, no
  failure is counted against the retry budget, nothing escalates or is
  quarantined, and no disruption budget counts it (it disrupted nothing).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import anyio
import structlog

from jarvis.loop import events as ev
from jarvis.loop.breakers import Breakers
from jarvis.loop.budgets import ChangeLog
from jarvis.loop.dispatch import Dispatcher
from jarvis.loop.fleetcap import FleetCaps
from jarvis.loop.ledger import RetryLedger
from jarvis.loop.record import Recorder
from jarvis.loop.report import TickReport
from jarvis.loop.shutdown import Shutdown
from jarvis.loop.unknowns import OpenUnknowns
from jarvis.model import (
    Action,
    BlockReason,
    Clock,
    ErrorKind,
    KillSwitchState,
    Outcome,
    OutcomeStatus,
    ResourceRef,
    RetryState,
    Verdict,
)
from jarvis.store import EventStore, LeaseLostError, StoreError
from jarvis.store.fleetcap import FleetCapError

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
        killswitch: Callable[[], Awaitable[KillSwitchState]],
        shutdown: Shutdown | None = None,
        unknowns: OpenUnknowns | None = None,
        caps: FleetCaps | None = None,
    ) -> None:
        self.clock = clock
        self.store = store
        self.ledger = ledger
        self.recorder = recorder
        self.dispatcher = dispatcher
        self.breakers = breakers
        self.changes = changes
        self.killswitch = killswitch
        """A fail-safe read of the kill switch (unreadable: engaged)."""
        self.shutdown = shutdown or Shutdown()
        self.unknowns = unknowns
        """Where an outcome recorded unknown goes to be asked about later; None: nowhere."""
        self.caps = caps
        """With shards: the fleet-wide caps each intent is written under; None: no caps."""

    async def apply(
        self, action: Action, report: TickReport, fleet: Sequence[ResourceRef] = ()
    ) -> Outcome | Verdict:
        """Apply ``action``; a block when it was not sent (its intent unwritten, or closed).

        ``fleet`` is what a fleet-wide budget's percentage is of.
        """
        with anyio.CancelScope(shield=True):
            outcome = await self._unit(action, report, fleet)
        return outcome  # noqa: RET504 - outside the scope: mypy reads a scope as able to swallow

    async def _unit(
        self, action: Action, report: TickReport, fleet: Sequence[ResourceRef]
    ) -> Outcome | Verdict:
        tick_id = report.tick_id
        action_id = ev.action_id_for(tick_id, action)
        start = self.clock.now()
        prior = self.ledger.get(action.key)
        state = self.ledger.attempted(action, start)
        intent = ev.started(tick_id, start, action, action_id)
        self.recorder.record(intent)
        if self.caps is not None:
            self.store.stage_caps(intent.idempotency_key, self.caps.of(action, start, fleet))
        try:
            with self.shutdown.bound() as cut:
                await self.flush()
        except FleetCapError as exc:
            # Another replica took what was left: not applied, not a failure, not charged.
            self.store.retract(intent.idempotency_key)
            self.ledger.revert(action.key, prior)
            return exc.verdict
        except LeaseLostError:
            # The store dropped the intent and the ledger row (a deposed leader
            # may not act); the scheduler steps down.
            self.ledger.revert(action.key, prior)
            raise
        except StoreError as exc:
            log.warning("intent not durable; action not taken", error=self.store.explain(exc))
            self.store.retract(intent.idempotency_key)
            self.ledger.revert(action.key, prior)
            return Verdict.block(
                BlockReason.STORE_UNAVAILABLE,
                "the intent and its ledger update could be neither committed nor spooled",
            )
        if cut.cancelled_caught:
            # The shutdown deadline came first: the intent may not be durable.
            self.store.retract(intent.idempotency_key)
            self.ledger.revert(action.key, prior)
            return Verdict.block(
                BlockReason.SHUTDOWN, "shutting down: the intent was not durable in time"
            )
        switch = await self._read_switch()
        if switch.engaged:
            return await self._withheld(tick_id, action, action_id, switch, (state, prior))
        self.breakers.probing(action, start)
        self.changes.note(action, start, action_id)
        structlog.contextvars.bind_contextvars(resource=str(action.target))
        outcome = await self.dispatcher.apply(action, ev.idempotency_key(action_id))
        now = self.clock.now()
        self.recorder.outcome(tick_id, now, action, outcome)
        if outcome.status is OutcomeStatus.TIMED_OUT and self.unknowns is not None:
            self.unknowns.opened(intent)
        if outcome.gone:  # no target, so nothing disrupted: no budget counts it
            self.changes.withdraw(action_id)
        # One rule for every provider: a target gone since observe (deleted, by a
        # human most likely) is neither the provider's failure nor the resource's,
        # so no breaker learns of it, and the budget counts no failure and escalates
        # nothing (`RetryBudget.finished`). Its attempt stays in the window: an
        # observe that keeps seeing what apply cannot find is still held to it.
        if outcome.gone or self.breakers.settle(action, outcome, start, now):
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
        # Past the shutdown deadline the outcome stays buffered: the daemon spools it.
        with self.shutdown.bound():
            await self.flush()
        return outcome

    async def _read_switch(self) -> KillSwitchState:
        """The kill switch read again; past the shutdown deadline unread, so engaged."""
        with self.shutdown.bound():
            return await self.killswitch()
        return KillSwitchState(  # fail-safe, as an unreadable switch
            engaged=True, actor="jarvis", reason="shutting down: the switch was not read in time"
        )

    async def _withheld(
        self,
        tick_id: str,
        action: Action,
        action_id: str,
        switch: KillSwitchState,
        rows: tuple[RetryState, RetryState | None],
    ) -> Verdict:
        """Close a durable intent the kill switch, engaged since the guard read it, stopped.

        Written at once, so no crash leaves the intent for recovery to call
        unknown; the attempt's ledger row goes back to what it was, as no
        provider was called.
        """
        why = switch.reason or "no reason given"
        verdict = Verdict.block(
            BlockReason.KILLSWITCH, f"engaged while the intent was written, not sent: {why}"
        )
        outcome = Outcome.withheld(BlockReason.KILLSWITCH, verdict.detail)
        now = self.clock.now()
        self.recorder.remember(ev.outcome_event(tick_id, now, action, action_id, outcome))
        self.ledger.undo(*rows)
        log.warning("kill switch engaged after the intent; action not sent", action_id=action_id)
        with self.shutdown.bound():
            await self.flush()
        return verdict

    async def flush(self) -> None:
        await self.recorder.flush(self.clock.now())
