"""The `customers` and `stripe_events` tables: customers as Jarvis manages them (issue 14).

Defined on the store's shared `metadata` (migration 0005_customers creates
``customers``; 0006_stripe_events adds its billing columns and
``stripe_events``; 0007_churn adds the win-back columns). The product inserts a row at
sign-up and bumps ``updated_at`` with every change; the customers sensor
(`jarvis.actuators.customers`) reads rows changed since its last read, so
``updated_at`` is indexed. The onboarding actuators
write back what they did (``stripe_customer_id``, ``welcomed_at``,
``dashboard_access``, and for the churn policy ``discount_code``,
``discount_at`` and ``reengaged_at``) with plain SQL, since actuators may not
import the store; so does the daemon's ``/unsubscribe`` (``marketing_opt_out``),
through the customers sensor.

The Stripe webhook (`jarvis.actuators.customers.webhooks`) writes the billing
columns: the subscription's id and status, the open invoice whose payment
failed and its hosted link (read by the mailer, never put in an event), and
for each object the ``created`` second of the newest Stripe event applied, so
an older event delivered late does not win. ``stripe_events`` holds every
Stripe event id received, which makes a replayed delivery change nothing.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta

from sqlalchemy import BigInteger, Boolean, Column, Index, Table, Text, false, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from jarvis.model import Customer
from jarvis.store.tables import UtcDateTime, metadata
from jarvis.store.usage import llm_usage

__all__ = ["customer_facets", "customers", "stripe_events"]

customers = Table(
    "customers",
    metadata,
    Column("id", Text, primary_key=True),
    Column("email", Text, nullable=False),
    Column("name", Text),
    Column("plan", Text, nullable=False, server_default="free"),
    Column("signed_up_at", UtcDateTime(), nullable=False),
    Column("last_active_at", UtcDateTime()),
    Column("stripe_customer_id", Text),
    Column("subscription_status", Text),
    Column("marketing_opt_out", Boolean, nullable=False, server_default=false()),
    Column("dashboard_access", Boolean, nullable=False, server_default=false()),
    Column("welcomed_at", UtcDateTime()),
    Column("updated_at", UtcDateTime(), nullable=False),
    Column("stripe_subscription_id", Text),
    Column("subscription_event_at", BigInteger),
    Column("unpaid_invoice_id", Text),
    Column("unpaid_invoice_url", Text),
    Column("invoice_event_at", BigInteger),
    Column("dunned_invoice_id", Text),
    # 0007_churn; after 0006's billing columns, where ALTER TABLE puts them on upgraded databases.
    Column("reengaged_at", UtcDateTime()),
    Column("discount_code", Text),
    Column("discount_at", UtcDateTime()),
    Index(None, "updated_at"),
    Index(None, "stripe_customer_id"),
)

stripe_events = Table(
    "stripe_events",
    metadata,
    Column("id", Text, primary_key=True),
    Column("type", Text, nullable=False),
    Column("created", BigInteger, nullable=False),
    Column("received_at", UtcDateTime(), nullable=False),
    Column("customer_id", Text),
    Column("outcome", Text, nullable=False),
)


async def customer_facets(
    engine: AsyncEngine, now: datetime, weeks: int = 4
) -> dict[str, Customer]:
    """Every customer's facet as the table and ``llm_usage`` stand: the daily report's churn list.

    A full read, unlike the sensor's: the report runs once a day. Weekly counts
    are of the ``weeks`` complete weeks (Monday 00:00 UTC) before ``now``.
    """
    this_week = _week_start(now)
    starts = [this_week - n * timedelta(days=7) for n in range(weeks, 0, -1)]
    counts: dict[str, list[int]] = defaultdict(lambda: [0] * weeks)
    last: dict[str, datetime] = {}
    t, who = llm_usage.c.time, llm_usage.c.customer_id
    async with engine.connect() as connection:
        for index, start in enumerate(starts):
            query = (
                select(who, func.count())
                .where(who.is_not(None), t >= start, t < start + timedelta(days=7))
                .group_by(who)
            )
            for customer_id, count in await connection.execute(query):
                counts[customer_id][index] = int(count)
        query = select(who, func.max(t)).where(who.is_not(None), t >= starts[0]).group_by(who)
        for customer_id, at in await connection.execute(query):
            last[customer_id] = _utc(at)
        rows = (await connection.execute(select(customers))).all()
    facets: dict[str, Customer] = {}
    for row in rows:
        active = max((a for a in (row.last_active_at, last.get(row.id)) if a), default=None)
        facets[row.id] = Customer(
            plan=row.plan,
            signed_up_at=row.signed_up_at,
            billing=row.stripe_customer_id is not None,
            welcomed=row.welcomed_at is not None,
            access=row.dashboard_access,
            opted_out=row.marketing_opt_out,
            subscription_status=row.subscription_status,
            last_active_at=active,
            weekly_usage=tuple(counts[row.id]) if row.id in counts else (0,) * weeks,
            reengaged_at=row.reengaged_at,
            discount_at=row.discount_at,
        )
    return facets


def _week_start(at: datetime) -> datetime:
    monday = datetime(2024, 1, 1, tzinfo=UTC)
    return monday + ((at - monday) // timedelta(days=7)) * timedelta(days=7)


def _utc(value: datetime | str) -> datetime:
    # MAX() of a timestamp comes back as text on SQLite, typed on PostgreSQL.
    at = datetime.fromisoformat(value) if isinstance(value, str) else value
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
