"""The customers sensor: ``customer://ID`` from the ``customers`` table, read incrementally.

Built by the provider registry (provider ``access``) from ``[customers]``. The
first observe reads every row; each later one reads only rows stamped after
the newest ``updated_at`` it has seen, or after its previous read less
``lag`` if that is earlier. The lag covers a writer whose transaction commits
a little after its stamp, and the skew between the writer's clock and
Jarvis's: a row stamped inside it is read once more, never missed. So a tick
costs what changed since the last, not the table. At most ``batch`` rows
(20,000) are read per observe, in (updated_at, id) order: the first reads of
a large table page through it over several ticks, each inside the observe
timeout, and customers not yet read are simply not observed yet. The states of unchanged
customers are kept and handed back as they were, so the reconciler records
`resource.changed` only for customers whose row moved. Customers are never
deleted here: a deleted row stays observed until the process restarts (not
handled yet).

Activity (`UsageActivity`, when configured) is read after the rows: a
customer who used the product since the last read, or every customer when a
week ended, gets a fresh state carrying ``last_active_at`` (the later of the
row's column and the usage table) and ``weekly_usage``. With ``[customers.source]``
the product's own database is first copied in (`ProductSource`), read-only.

It also applies ``grant_access`` and ``revoke_access``: dashboard access is a
column of the row, which the product reads. The write is conditional on the
row's subscription status as it is then, so a renewal or a cancellation that a
Stripe webhook wrote since the tick observed the row is not undone by the stale
view (nothing is changed; the next tick's policies see it).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Protocol

from jarvis.actuators.base import ActuatorError, Scope
from jarvis.actuators.customers.activity import UsageActivity
from jarvis.actuators.customers.source import ProductSource
from jarvis.actuators.customers.table import CustomerRow, CustomerTable
from jarvis.model import (
    CUSTOMER_KIND,
    CUSTOMER_SCHEME,
    Action,
    Clock,
    Customer,
    GrantAccess,
    Health,
    Outcome,
    ResourceRef,
    ResourceState,
    RevokeAccess,
)

__all__ = ["Activity", "CustomersActuator", "customer_state"]

_EPOCH = datetime.fromisoformat("1970-01-01T00:00:00+00:00")
"""Before any stamp: the first read takes every row."""


class Activity(Protocol):
    """What the state builder reads of activity: `UsageActivity`, or the simulated world's."""

    def last_active(self, customer_id: str) -> datetime | None: ...

    def weekly(self, customer_id: str) -> tuple[int, ...]: ...


def customer_state(
    row: CustomerRow, observed_at: datetime, activity: Activity | None = None
) -> ResourceState:
    """One row as a resource: the `Customer` facet and its stage as the detail."""
    last_active = row.last_active_at
    weekly: tuple[int, ...] = ()
    if activity is not None:
        used = activity.last_active(row.id)
        if used is not None and (last_active is None or used > last_active):
            last_active = used
        weekly = activity.weekly(row.id)
    customer = Customer(
        plan=row.plan,
        signed_up_at=row.signed_up_at,
        billing=row.billing,
        welcomed=row.welcomed,
        access=row.access,
        opted_out=row.opted_out,
        subscription_status=row.subscription_status,
        unpaid_invoice=row.unpaid_invoice,
        dunned_invoice=row.dunned_invoice,
        last_active_at=last_active,
        weekly_usage=weekly,
        reengaged_at=row.reengaged_at,
        discount_at=row.discount_at,
    )
    return ResourceState(
        ref=ResourceRef(CUSTOMER_SCHEME, row.id, kind=CUSTOMER_KIND),
        health=Health.HEALTHY,
        observed_at=observed_at,
        detail=customer.stage(),
        customer=customer,
    )


class CustomersActuator:
    """Observes every customer; applies ``grant_access`` and ``revoke_access``."""

    def __init__(
        self,
        table: CustomerTable,
        *,
        clock: Clock,
        lag: timedelta,
        batch: int = 20_000,
        activity: UsageActivity | None = None,
        source: ProductSource | None = None,
    ) -> None:
        self._table = table
        self._activity = activity
        self._source = source
        self._clock = clock
        self._lag = lag
        self._batch = batch
        self._page: tuple[datetime, str] | None = None
        """Where the next read resumes while catching up on more rows than one batch."""
        self._states: dict[str, ResourceState] = {}
        self._rows: dict[str, CustomerRow] = {}
        self._newest = _EPOCH
        self._last_read: datetime | None = None
        self.rows_read = 0
        """Rows read by the last observe: what the incremental read costs (the bench reads it)."""
        self.active_seen = 0
        """Customers with requests counted by the last observe (the bench reads it)."""

    @property
    def name(self) -> str:
        return "customers"

    @property
    def catching_up(self) -> bool:
        """Whether the last observe stopped at a full batch, of the table or of the product's.

        Then more rows wait for the next observe: a large table's first read is under way.
        """
        return self._page is not None or (self._source is not None and self._source.paging)

    @property
    def provider(self) -> str:
        return CUSTOMER_SCHEME

    @property
    def action_kinds(self) -> frozenset[str]:
        return frozenset({GrantAccess.kind, RevokeAccess.kind})

    async def observe(self, _scope: Scope | None = None) -> Sequence[ResourceState]:
        now = self._clock.now()
        if self._source is not None:
            await self._source.sync(now)
        if self._page is not None:
            since, after = self._page
            rows = await self._table.changed_since(since, after=after, limit=self._batch)
        else:
            since = _EPOCH
            if self._last_read is not None:
                since = min(self._newest, self._last_read - self._lag)
            rows = await self._table.changed_since(since, limit=self._batch)
            # While catching up, the lag counts from the read that started it.
            self._last_read = now
        self._page = (rows[-1].updated_at, rows[-1].id) if len(rows) == self._batch else None
        self.rows_read = len(rows)
        for row in rows:
            if self._rows.get(row.id) == row:
                continue  # re-read inside the lag, unchanged
            self._rows[row.id] = row
            self._states[row.id] = customer_state(row, now, self._activity)
            self._newest = max(self._newest, row.updated_at)
        if self._activity is not None:
            seen, week_ended = await self._activity.read(now)
            self.active_seen = len(seen)
            for customer_id in self._rows if week_ended else seen & self._rows.keys():
                self._states[customer_id] = customer_state(
                    self._rows[customer_id], now, self._activity
                )
        return list(self._states.values())

    async def opt_out(self, customer_id: str) -> bool:
        """Refuse marketing email for the customer (``/unsubscribe``); False if unknown.

        Written to Jarvis's ``customers`` table, never to a product source.
        """
        return await self._table.opt_out(customer_id, self._clock.now())

    async def apply(self, action: Action, key: str) -> Outcome:  # noqa: ARG002 - granting (or revoking) twice does it once: the write is the record
        allowed = isinstance(action.params, GrantAccess)
        if not allowed and not isinstance(action.params, RevokeAccess):
            return Outcome.failure(f"customers cannot apply {action.kind}")
        try:
            done = await self._table.set_access(action.target.name, allowed, self._clock.now())
        except ActuatorError as exc:
            return exc.outcome()
        if not done:
            # Stripe's word arrived since observe (a renewal, a cancellation): the next
            # tick's policies see it; acting on the stale view would undo it meanwhile.
            if allowed:
                return Outcome.success("not granted: the subscription is unpaid or canceled now")
            return Outcome.success("not revoked: the subscription is no longer unpaid or canceled")
        return Outcome.success(f"dashboard access {'granted' if allowed else 'revoked'}")

    async def aclose(self) -> None:
        await self._table.aclose()
        if self._activity is not None:
            await self._activity.aclose()
        if self._source is not None:
            await self._source.aclose()
