"""Billing columns on `customers` and the `stripe_events` table: Stripe webhooks (issue 14).

Revision ID: 0006_stripe_events
Revises: 0005_customers
Create Date: 2026-11-29

Written out in full rather than imported from `jarvis.store.customers`, so this
revision keeps meaning what it meant when later revisions change the tables.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_stripe_events"
down_revision: str | Sequence[str] | None = "0005_customers"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = (
    ("stripe_subscription_id", sa.Text),
    ("subscription_event_at", sa.BigInteger),
    ("unpaid_invoice_id", sa.Text),
    ("unpaid_invoice_url", sa.Text),
    ("invoice_event_at", sa.BigInteger),
    ("dunned_invoice_id", sa.Text),
)


def upgrade() -> None:
    # Batch mode: SQLite cannot alter a table in place beyond adding columns.
    with op.batch_alter_table("customers") as batch:
        for name, type_ in _COLUMNS:
            batch.add_column(sa.Column(name, type_()))
        batch.create_index("ix_customers_stripe_customer_id", ["stripe_customer_id"])
    op.create_table(
        "stripe_events",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("created", sa.BigInteger(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("customer_id", sa.Text()),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_stripe_events"),
    )


def downgrade() -> None:
    op.drop_table("stripe_events")
    with op.batch_alter_table("customers") as batch:
        batch.drop_index("ix_customers_stripe_customer_id")
        for name, _ in reversed(_COLUMNS):
            batch.drop_column(name)
