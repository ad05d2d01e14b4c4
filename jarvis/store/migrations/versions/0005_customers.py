"""The `customers` table: customers observed as ``customer://ID`` (issue 14).

Revision ID: 0005_customers
Revises: 0004_notifications
Create Date: 2026-11-28

Written out in full rather than imported from `jarvis.store.customers`, so this
revision keeps meaning what it meant when later revisions change the table.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_customers"
down_revision: str | Sequence[str] | None = "0004_notifications"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "customers",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("email", sa.Text(), nullable=False),
        sa.Column("name", sa.Text()),
        sa.Column("plan", sa.Text(), nullable=False, server_default="free"),
        sa.Column("signed_up_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_active_at", sa.DateTime(timezone=True)),
        sa.Column("stripe_customer_id", sa.Text()),
        sa.Column("subscription_status", sa.Text()),
        sa.Column("marketing_opt_out", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("dashboard_access", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("welcomed_at", sa.DateTime(timezone=True)),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_customers"),
    )
    op.create_index("ix_customers_updated_at", "customers", ["updated_at"])


def downgrade() -> None:
    op.drop_index("ix_customers_updated_at", table_name="customers")
    op.drop_table("customers")
