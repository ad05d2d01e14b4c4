"""The kill switch as operators and the reconciler see it.

Wraps a backend (Redis or the event database, from `jarvis.store`) with the
promises Jarvis makes about it: a read that fails counts as engaged
(fail-safe); every flip is recorded as an event with who, why and when; and
only an explicit release releases. A backend with no record at all (Redis
restarted empty, a deleted row) is judged by the last recorded flip: engaged
if that was an engage, released only if it was a release or there never was
one (a new installation). A flip read from the backend is recorded too, by its
own key (a no-op when its writer recorded it): an engage another process made
in Redis while the database was away, which it could not spool (the daemon
owns the spool file), reaches the database through the daemon that reads it.
Called by the reconciler right before each apply, by the CLI, and by the
admin API and the status page (through `jarvis.loop.admin.AdminService`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

import structlog

from jarvis.model import Clock, Event, EventKind, KillSwitchState
from jarvis.store.errors import FlipOverrunError, StoreError, said
from jarvis.store.storable import safe_text

if TYPE_CHECKING:
    from jarvis.store import EventStore, KillSwitchBackend
    from jarvis.store.redact import Redactor

log = structlog.get_logger("jarvis.killswitch")


class KillSwitch:
    def __init__(self, backend: KillSwitchBackend, store: EventStore, clock: Clock) -> None:
        self.backend = backend
        self.store = store
        self.clock = clock
        self._witnessed: KillSwitchState | None = None

    async def read(self) -> KillSwitchState:
        """The current state; raises StoreError when it cannot be read."""
        state = await self.backend.read()
        if state is not None:
            self._witness(state)
            return state
        return await self._from_history()

    def _witness(self, state: KillSwitchState) -> None:
        """Buffer the event of a flip read from the backend, once per flip this process sees.

        Keyed as its writer keyed it (`flip` makes the event at the state's own
        time), so it is written once whoever gets there first; the store's next
        flush writes it, or spools it while the database is away. A release is
        on record before it is in the backend (`write_in_order`), so only an
        engage whose writer could not record it adds a row.
        """
        if state.changed_at is None or state == self._witnessed:
            return
        self._witnessed = state
        self.store.append([flip_event(state, state.changed_at)])

    async def _from_history(self) -> KillSwitchState:
        kinds = [EventKind.KILLSWITCH_ENGAGED.value, EventKind.KILLSWITCH_RELEASED.value]
        flips = await self.store.events(limit=1, kinds=kinds)
        if not flips:
            return KillSwitchState(engaged=False)
        (last,) = flips
        if last.kind is EventKind.KILLSWITCH_RELEASED:
            return KillSwitchState(
                engaged=False, actor=str(last.payload.get("actor", "")), changed_at=last.ts
            )
        actor = str(last.payload.get("actor", ""))
        return KillSwitchState(
            engaged=True,
            actor=actor,
            reason=(
                f"the kill switch record is missing; the last recorded flip engaged it "
                f"({last.reason or 'no reason given'}) at {last.ts.isoformat()}: "
                f"release it explicitly"
            ),
            changed_at=last.ts,
        )

    async def read_failsafe(self) -> KillSwitchState:
        """The current state, or an engaged one when it cannot be read."""
        try:
            return await self.read()
        except Exception as exc:  # noqa: BLE001 - any failure to read must stop actions
            return KillSwitchState(
                engaged=True,
                actor="jarvis",
                reason=f"kill switch state unreadable ({exc}); failing safe",
            )

    async def set(self, *, engaged: bool, actor: str, reason: str) -> KillSwitchState:
        """Flip the switch, record who, why and when, and flush the event at once."""
        state, event = flip(
            engaged=engaged,
            actor=actor,
            reason=reason,
            now=self.clock.now(),
            redactor=self.store.redactor,
        )
        await self.record(state, event)
        return state

    async def record(self, state: KillSwitchState, event: Event) -> None:
        """Write a flip made by `flip`, in the order `write_in_order` keeps.

        The state goes to the backend; the event is flushed through the store,
        to the spool if the database is away for an engage, to the database
        itself for a release.
        """

        async def record_event(*, journal: bool) -> None:
            self.store.append([event])
            try:
                await self.store.flush(journal=journal)
            except BaseException:
                if not journal:
                    # Not written, or not known to be: never let a later flush
                    # record a release that did not happen.
                    self.store.retract(event.idempotency_key)
                raise

        async def restate(current: KillSwitchState) -> None:
            again = restatement(current, now=self.clock.now(), redactor=self.store.redactor)
            self.store.append([again])
            await self.store.flush(journal=True)

        await write_in_order(state, self.backend, record_event, restate)


class RecordEvent(Protocol):
    async def __call__(self, *, journal: bool) -> None: ...


async def write_in_order(
    state: KillSwitchState,
    backend: KillSwitchBackend,
    record_event: RecordEvent,
    restate: Callable[[KillSwitchState], Awaitable[None]] | None = None,
) -> None:
    """A flip is two writes, and their order is part of the promise.

    An engage acts first, then is recorded (``journal=True``: spooled if the
    database is away): stopping actions waits for no database. A release is
    first an event committed to the database itself (``journal=False``),
    then the state. Released first, it could let a leader's actions be
    recorded ahead of it, and the record would show them taken under an
    engaged switch. Either record failing raises StoreError saying what is
    in force: a release that cannot be recorded leaves the switch engaged;
    an engage that cannot is engaged all the same. A flip landing between a
    release's record and its write wins where the backend can tell
    (`KillSwitchBackend.release`); the release's event is committed by then,
    so ``restate`` records the engaged state the backend kept once more (an
    engage committed before that release left it the last flip on record: a
    Redis restarted empty would have read the history as released). The one
    order for every writer: `KillSwitch.record` (the daemon, the API, the
    status page) and the CLI's direct write.
    """
    if state.engaged:
        await backend.write(state)
        try:
            await record_event(journal=True)
        except StoreError as exc:
            raise StoreError(
                f"kill switch ENGAGED, but the flip is not recorded ({exc});"
                " run the engage again once the database answers, to record it"
            ) from exc
        return

    recorded = False

    async def record() -> None:
        nonlocal recorded
        try:
            await record_event(journal=False)
        except StoreError as exc:
            raise StoreError(
                f"the release cannot be recorded ({exc}); the kill switch stays engaged"
            ) from exc
        recorded = True

    try:
        await backend.release(state, record)
    except FlipOverrunError:
        if restate is not None:
            await _restate_winner(backend, restate)
        raise
    except StoreError as exc:
        if not recorded:
            raise
        # Not restated as engaged: the write may have landed before its answer was lost,
        # and a record saying engaged over a released switch is the one order forbids.
        raise StoreError(
            f"the release is recorded but not applied ({exc}); the kill switch stays"
            " engaged: release it again"
        ) from exc


async def _restate_winner(
    backend: KillSwitchBackend, restate: Callable[[KillSwitchState], Awaitable[None]]
) -> None:
    """Record again the engaged state a release lost to; a failure is logged, not raised:
    the release's own error is what its caller must see."""
    try:
        current = await backend.read()
        if current is not None and current.engaged:
            await restate(current)
    except StoreError as exc:
        log.warning("the flip a release lost to is not recorded again", error=said(exc))


def restatement(current: KillSwitchState, *, now: datetime, redactor: Redactor) -> Event:
    """The engage event that records ``current`` again, after a release lost to it.

    Keyed apart from the engage it repeats, which may carry the same time and actor.
    """
    _, event = flip(
        engaged=True,
        actor=current.actor or "jarvis",
        reason=f"{current.reason} (recorded again: a release recorded meanwhile was not applied)",
        now=now,
        redactor=redactor,
    )
    return replace(event, idempotency_key=f"{event.idempotency_key}:again")


def flip(
    *, engaged: bool, actor: str, reason: str, now: datetime, redactor: Redactor
) -> tuple[KillSwitchState, Event]:
    """The state a flip writes and the event that records it.

    Actor and reason are outside text: known secrets are redacted before the
    backend writes them, not only the event. Shared by `KillSwitch.set` and
    the CLI's direct write (`jarvis.store.direct`), so both write the same.
    """
    state = KillSwitchState(
        engaged=engaged,
        actor=safe_text(redactor.text(actor)),
        reason=safe_text(redactor.text(reason)),
        changed_at=now,
    )
    return state, flip_event(state, now)


class FlipLog:
    """Logs each flip the loop sees, whoever made it: the CLI, the API or a failing read.

    A flip from another process reaches the daemon only through its next
    read, so the daemon's log would otherwise never mention an engage made
    with `jarvis killswitch engage`. An engaged switch is logged at the first
    read too (a daemon starting stopped should say so); a release only as a
    change.
    """

    def __init__(self) -> None:
        self._seen: tuple[bool, str | None, datetime | None] | None = None

    def seen(self, state: KillSwitchState) -> None:
        key = (state.engaged, state.actor, state.changed_at)
        if key == self._seen:
            return
        first = self._seen is None
        self._seen = key
        if state.engaged:
            log.warning(
                "kill switch engaged", actor=state.actor, reason=state.reason, at=state.changed_at
            )
        elif not first:
            log.info("kill switch released", actor=state.actor, at=state.changed_at)


def flip_event(state: KillSwitchState, now: datetime) -> Event:
    kind = EventKind.KILLSWITCH_ENGAGED if state.engaged else EventKind.KILLSWITCH_RELEASED
    return Event(
        kind=kind,
        ts=now,
        idempotency_key=f"killswitch:{now.isoformat()}:{kind.value}:{state.actor}",
        reason=state.reason,
        payload={"actor": state.actor, "reason": state.reason},
    )
