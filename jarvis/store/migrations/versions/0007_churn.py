"""Churn: win-back columns on `customers`, the customer of each `llm_usage` row (issue 14).

Revision ID: 0007_churn
Revises: 0005_customers
Create Date: 2026-11-29

Written out in full rather than imported from the store's tables, so this
revision keeps meaning what it meant when later revisions change them.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_churn"
down_revision: str | Sequence[str] | None = "0006_stripe_events"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("customers") as batch:
        batch.add_column(sa.Column("reengaged_at", sa.DateTime(timezone=True)))
        batch.add_column(sa.Column("discount_code", sa.Text()))
        batch.add_column(sa.Column("discount_at", sa.DateTime(timezone=True)))
    with op.batch_alter_table("llm_usage") as batch:
        batch.add_column(sa.Column("customer_id", sa.Text()))


def downgrade() -> None:
    with op.batch_alter_table("llm_usage") as batch:
        batch.drop_column("customer_id")
    with op.batch_alter_table("customers") as batch:
        batch.drop_column("discount_at")
        batch.drop_column("discount_code")
        batch.drop_column("reengaged_at")
