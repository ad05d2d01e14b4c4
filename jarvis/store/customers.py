"""The `customers` and `stripe_events` tables: customers as Jarvis manages them (issue 14).

Defined on the store's shared `metadata` (migration 0005_customers creates
``customers``; 0006_stripe_events adds its billing columns and
``stripe_events``). The product inserts a row at sign-up and bumps
``updated_at`` with every change; the customers sensor
(`jarvis.actuators.customers`) reads rows changed since its last read, so
``updated_at`` is indexed. The onboarding actuators
write back what they did (``stripe_customer_id``, ``welcomed_at``,
``dashboard_access``) with plain SQL, since actuators may not import the store.

The Stripe webhook (`jarvis.actuators.customers.webhooks`) writes the billing
columns: the subscription's id and status, the open invoice whose payment
failed and its hosted link (read by the mailer, never put in an event), and
for each object the ``created`` second of the newest Stripe event applied, so
an older event delivered late does not win. ``stripe_events`` holds every
Stripe event id received, which makes a replayed delivery change nothing.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Index, Table, Text, false

from jarvis.store.tables import UtcDateTime, metadata

__all__ = ["customers", "stripe_events"]

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
