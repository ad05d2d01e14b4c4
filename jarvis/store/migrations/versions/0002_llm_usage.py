"""The llm_usage table: one row per LLM request, for spend and model performance.

Revision ID: 0002
Revises: 0001
Create Date: 2025-01-02

Written out in full rather than imported from `jarvis.store.usage`, so this
revision keeps meaning what it meant when later revisions change the table.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "llm_usage",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("route", sa.Text(), nullable=False),
        sa.Column("model", sa.Text(), nullable=False),
        sa.Column("input_tokens", sa.Integer(), nullable=False),
        sa.Column("output_tokens", sa.Integer(), nullable=False),
        sa.Column("cost_usd", sa.Numeric(18, 8), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("success", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_llm_usage"),
    )
    op.create_index("ix_llm_usage_time", "llm_usage", ["time"])
    op.create_index("ix_llm_usage_route_model_time", "llm_usage", ["route", "model", "time"])


def downgrade() -> None:
    op.drop_index("ix_llm_usage_route_model_time", table_name="llm_usage")
    op.drop_index("ix_llm_usage_time", table_name="llm_usage")
    op.drop_table("llm_usage")
