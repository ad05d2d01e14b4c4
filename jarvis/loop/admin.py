"""What the admin API and the status page may do to the daemon: `AdminService`.

The HTTP server (`jarvis.telemetry`) cannot import the loop, so the composition
root hands it an `AdminService`, which implements the telemetry layer's
`AdminBackend` and `PageBackend` protocols over the kill switch and the event
store. `reset_retries` is the one way a quarantine is lifted: the CLI's
``jarvis retries reset`` and the page's reset button both call it, so both
record the same ``retries.reset`` event. The reconciler re-reads the ledger
every tick, so a reset here takes effect at the next tick like one from
another process.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

from jarvis.loop.killswitch import KillSwitch
from jarvis.model import Action, Clock, Event, EventKind, KillSwitchState, RetryState
from jarvis.store import EventStore

if TYPE_CHECKING:
    # Types only: `jarvis retries reset` imports this module for `reset_retries`
    # and must not wait for the loop, the page or aiohttp.
    from datetime import datetime

    from sqlalchemy.ext.asyncio import AsyncEngine

    from jarvis.loop.overrides import OverrideQueue
    from jarvis.safety import Remaining
    from jarvis.telemetry.web.view import LeaderView, NotificationView, OverrideResult

__all__ = [
    "AdminService",
    "UnknownResourceError",
    "lease_view",
    "reset_retries",
    "retries_reset",
]

_PAGE_KINDS = [kind.value for kind in EventKind if not kind.value.startswith("tick.")]


class UnknownResourceError(LookupError):
    """A reset named a resource the retry ledger does not hold."""


async def reset_retries(store: EventStore, clock: Clock, resource: str, actor: str) -> int:
    """Forget ``resource``'s ledger rows, lifting its quarantine, and record who did it;
    return how many rows held something.

    The rows and the ``retries.reset`` event go in one transaction: a database that
    takes the delete but not the event (a role without INSERT on events) or is away
    resets nothing, and StoreError says why. Never spooled: a quarantine lifted must be
    on record when it is lifted.

    A resource with no rows records nothing: there was nothing to reset. Nor does
    one whose rows are all empty (`RetryState.empty`, what an attempt taken back
    leaves): `jarvis retries list` does not show them, and every reader takes them
    as no row at all.
    """
    stored = store.ledger_resource(resource)  # a name holding a secret is kept redacted
    ledger = await store.load_retries()
    count = sum(1 for key, state in ledger.items() if key[0] == stored and not state.empty)
    if count == 0:
        return 0
    await store.reset_retries(resource, [retries_reset(resource, actor, clock.now(), count)])
    return count


def retries_reset(resource: str, actor: str, now: datetime, rows: int) -> Event:
    """The ``retries.reset`` event of ``actor`` forgetting ``rows`` ledger rows of ``resource``
    (the simulated operator's repairs record it too)."""
    return Event(
        kind=EventKind.RETRIES_RESET,
        ts=now,
        idempotency_key=f"retries.reset:{resource}:{now.isoformat()}",
        resource=resource,
        reason=f"reset by {actor}",
        payload={"actor": actor, "rows": rows},
    )


async def lease_view(engine: AsyncEngine, here: str) -> LeaderView:
    """Who holds the loop's lease, under which epoch, until when (the database's clock)."""
    from jarvis.store.lease import lease_status  # noqa: PLC0415 - PostgreSQL only
    from jarvis.telemetry.web.view import LeaderView  # noqa: PLC0415 - see the imports

    found = await lease_status(engine)
    lease = found.lease
    if lease is None:
        return LeaderView(single_node=False, here=here)
    return LeaderView(
        single_node=False,
        here=here,
        replica=lease.holder,
        epoch=lease.epoch,
        expires_at=lease.expires_at,
        expired=lease.expires_at <= found.now,
    )


class AdminService:
    """The HTTP server's backend: the kill switch, the ledger, and an audit event per request.

    Inside the daemon it also has the override queue (`jarvis.loop.overrides`),
    who leads, and the budgets' remaining as the last tick computed them; a
    standalone one (tests, a server without a loop) offers no overrides.
    """

    def __init__(
        self,
        killswitch: KillSwitch,
        *,
        overrides: OverrideQueue | None = None,
        leader: Callable[[], Awaitable[LeaderView]] | None = None,
        budgets_left: Callable[[], Sequence[Remaining]] | None = None,
        resources: Callable[[], Sequence[str]] | None = None,
        notifications: Callable[[], Sequence[NotificationView]] | None = None,
    ) -> None:
        self.killswitch = killswitch
        self._overrides = overrides
        self._leader = leader
        self._budgets_left = budgets_left
        self._resources = resources
        self._notifications = notifications

    @property
    def _store(self) -> EventStore:
        return self.killswitch.store

    async def killswitch_status(self) -> KillSwitchState:
        return await self.killswitch.read()

    def outage(self, exc: BaseException) -> str | None:
        """The store's, or the kill switch's Redis's, failure in one line naming it
        (`EventStore.explain`); None for anything else: a bug, logged with its traceback."""
        return self._store.outage(exc)

    async def set_killswitch(self, *, engaged: bool, actor: str, reason: str) -> KillSwitchState:
        return await self.killswitch.set(engaged=engaged, actor=actor, reason=reason)

    async def quarantined(self) -> list[RetryState]:
        """Ledger rows in quarantine, by resource."""
        ledger = await self._store.load_retries()
        return [state for _, state in sorted(ledger.items()) if state.quarantined]

    async def reset_retries(self, *, resource: str, actor: str) -> int:
        """Lift ``resource``'s quarantine; `UnknownResourceError` when it has no ledger rows
        that hold anything (`reset_retries`)."""
        count = await reset_retries(self._store, self.killswitch.clock, resource, actor)
        if count == 0:
            raise UnknownResourceError(resource)
        return count

    @property
    def overrides_enabled(self) -> bool:
        return self._overrides is not None

    async def override(self, action: Action) -> OverrideResult:
        if self._overrides is None:
            from jarvis.telemetry.web.view import OverrideResult  # noqa: PLC0415 - see the imports

            return OverrideResult("refused", "overrides need the running daemon's loop")
        return await self._overrides.submit(action)

    async def leader(self) -> LeaderView | None:
        return None if self._leader is None else await self._leader()

    def budgets_left(self) -> Sequence[Remaining]:
        return [] if self._budgets_left is None else self._budgets_left()

    def notifications(self) -> Sequence[NotificationView] | None:
        return None if self._notifications is None else self._notifications()

    def known_resources(self) -> Sequence[str]:
        return [] if self._resources is None else self._resources()

    async def recent_events(self, *, after_id: int | None, limit: int) -> Sequence[Event]:
        """The newest ``limit`` events but tick markers, or the first after ``after_id``.

        Oldest first. ``tick.started``/``tick.finished`` are left out: two a
        tick, they would push everything an operator reads off the page.
        """
        return await self._store.events(limit=limit, after_id=after_id, kinds=_PAGE_KINDS)

    async def escalations(self, *, limit: int) -> Sequence[Event]:
        """The newest ``action.escalated`` events, oldest first."""
        return await self._store.events(limit=limit, kinds=[EventKind.ACTION_ESCALATED.value])

    async def record_admin_request(
        self, *, method: str, path: str, remote: str, result: str, detail: str
    ) -> None:
        now = self.killswitch.clock.now()
        self._store.append(
            [
                Event(
                    kind=EventKind.ADMIN_REQUEST,
                    ts=now,
                    idempotency_key=f"admin:{now.isoformat()}:{method}:{path}:{remote}",
                    reason=detail or result,
                    payload={
                        "method": method,
                        "path": path,
                        "remote": remote,
                        "result": result,
                        "detail": detail,
                    },
                )
            ]
        )
        await self._store.flush()
