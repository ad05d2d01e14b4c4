"""An index of the outbox's pending rows by (channel, incident, id).

Revision ID: 0012_outbox_pending_index
Revises: 0011_lease_shards
Create Date: 2026-11-30

A notification is claimed only when no older row of its incident is pending on
its channel (`jarvis.store.outbox`), and the claim asks that of every due
candidate. With no index to answer it, PostgreSQL went through the pending rows
again for each candidate, and SQLite through every row ever written below the
candidate's id, history included. While a receiver was down the backlog made
each claim slower with its square (`bench/outbox.py`, with 100,000 sent rows:
about 1 s a claim at 50,000 pending on PostgreSQL, 36 s at 1,000 on SQLite).
Partial, on pending rows only: the sent history is most of the table and is
never asked about.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_outbox_pending_index"
down_revision: str | Sequence[str] | None = "0011_lease_shards"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PENDING = sa.text("status = 'pending'")


def upgrade() -> None:
    op.create_index(
        "ix_notifications_channel_incident_id",
        "notifications",
        ["channel", "incident", "id"],
        postgresql_where=_PENDING,
        sqlite_where=_PENDING,
    )


def downgrade() -> None:
    op.drop_index("ix_notifications_channel_incident_id", table_name="notifications")
