"""The store's first schema: events, the retry ledger and the kill switch.

Revision ID: 0001
Revises:
Create Date: 2025-01-01

Written out in full rather than imported from `jarvis.store.tables`, so this
revision keeps meaning what it meant when later revisions change the tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tick_id", sa.Text()),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("resource", sa.Text()),
        sa.Column("action_kind", sa.Text()),
        sa.Column("policy", sa.Text()),
        sa.Column("reason", sa.Text()),
        sa.Column("payload", _json(), nullable=False),
        sa.Column("action_id", sa.Text()),
        sa.Column("idempotency_key", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_events"),
        sa.UniqueConstraint("idempotency_key", name="uq_events_idempotency_key"),
    )
    op.create_index("ix_events_kind_id", "events", ["kind", "id"])
    op.create_index("ix_events_resource_id", "events", ["resource", "id"])
    op.create_index("ix_events_ts", "events", ["ts"])
    op.create_index("ix_events_action_id", "events", ["action_id"])

    op.create_table(
        "retry_state",
        sa.Column("resource", sa.Text(), nullable=False),
        sa.Column("action_kind", sa.Text(), nullable=False),
        sa.Column("attempts", _json(), nullable=False),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.Column("retry_after", sa.DateTime(timezone=True)),
        sa.Column("quarantined", sa.Boolean(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("resource", "action_kind", name="pk_retry_state"),
    )

    op.create_table(
        "killswitch",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("engaged", sa.Boolean(), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("id", name="pk_killswitch"),
        sa.CheckConstraint("id = 1", name="ck_killswitch_single_row"),
    )


def downgrade() -> None:
    op.drop_table("killswitch")
    op.drop_table("retry_state")
    op.drop_index("ix_events_action_id", table_name="events")
    op.drop_index("ix_events_ts", table_name="events")
    op.drop_index("ix_events_resource_id", table_name="events")
    op.drop_index("ix_events_kind_id", table_name="events")
    op.drop_table("events")
