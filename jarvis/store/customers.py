"""The `customers` table: the product's customers, as Jarvis manages them (issue 14).

Defined on the store's shared `metadata` (migration 0005_customers creates
it; 0007_churn adds the win-back columns). The product inserts a row at
sign-up and bumps ``updated_at`` with every change; the customers sensor
(`jarvis.actuators.customers`) reads rows changed since its last read, so
``updated_at`` is indexed. The onboarding actuators
write back what they did (``stripe_customer_id``, ``welcomed_at``,
``dashboard_access``, and for the churn policy ``discount_code``,
``discount_at`` and ``reengaged_at``) with plain SQL, since actuators may not
import the store; so does the daemon's ``/unsubscribe`` (``marketing_opt_out``),
through the customers sensor.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Index, Table, Text, false

from jarvis.store.tables import UtcDateTime, metadata

__all__ = ["customers"]

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
    # 0007_churn; after updated_at, where ALTER TABLE puts them on upgraded databases.
    Column("reengaged_at", UtcDateTime()),
    Column("discount_code", Text),
    Column("discount_at", UtcDateTime()),
    Index(None, "updated_at"),
)
