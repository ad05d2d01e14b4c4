"""The revenue tables: MRR per day and each customer's MRR book (issue 14).

Revision ID: 0008_revenue
Revises: 0005_customers
Create Date: 2026-11-29

Written out in full rather than imported from `jarvis.store.revenue`, so this
revision keeps meaning what it meant when later revisions change the tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0008_revenue"
down_revision: str | Sequence[str] | None = "0007_churn"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "revenue_daily",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("mrr_usd", sa.Float(), nullable=False),
        sa.Column("new_usd", sa.Float(), nullable=False),
        sa.Column("expansion_usd", sa.Float(), nullable=False),
        sa.Column("contraction_usd", sa.Float(), nullable=False),
        sa.Column("churned_usd", sa.Float(), nullable=False),
        sa.Column("paying", sa.Integer(), nullable=False),
        sa.Column("unpriced", sa.Integer(), nullable=False),
        sa.Column("customers", _json(), nullable=False),
        sa.Column("settled_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("day", name="pk_revenue_daily"),
    )
    op.create_table(
        "revenue_book",
        sa.Column("customer_id", sa.Text(), nullable=False),
        sa.Column("mrr_usd", sa.Float(), nullable=False),
        sa.Column("since", sa.Date(), nullable=False),
        sa.Column("before_usd", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("customer_id", name="pk_revenue_book"),
    )


def downgrade() -> None:
    op.drop_table("revenue_book")
    op.drop_table("revenue_daily")
