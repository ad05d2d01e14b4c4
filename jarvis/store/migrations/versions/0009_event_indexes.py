"""Cheaper event indexes to write: a partial ``action_id`` index, byte-wise idempotency keys.

Revision ID: 0009_event_indexes
Revises: 0008_revenue
Create Date: 2026-11-29

Every event appended writes a row in each index of ``events``; at ingest,
the indexes cost the server about three times the row itself (issue 16,
docs/benchmarks.md, benchmark 3). Two of them do more work than their readers
need:

- ``ix_events_action_id`` held a row for every event, though only action
  events carry an action id and every reader (open intents, retention's
  intent/outcome pairing) asks for one equal to another's, which implies it
  is not null. It now holds only those rows (PostgreSQL and SQLite alike).
- The unique idempotency key compared keys under the database's collation
  (``strcoll`` under a libc locale, even ``C.UTF-8``); on PostgreSQL the
  column is now ``COLLATE "C"``: byte order, the same equality (every
  deterministic collation compares equal exactly when the bytes are), and
  nothing orders or ranges by this key. Changing the collation rebuilds the
  constraint's index, not the table. SQLite already compares bytes.

The ``ts`` index stays: reading by time (the policies' history, reports,
budgets, fleet caps inside the write transaction) walks it; without it those
reads scan the table.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_event_indexes"
down_revision: str | Sequence[str] | None = "0008_revenue"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_HAS_ACTION = sa.text("action_id IS NOT NULL")


def upgrade() -> None:
    op.drop_index("ix_events_action_id", table_name="events")
    op.create_index(
        "ix_events_action_id",
        "events",
        ["action_id"],
        postgresql_where=_HAS_ACTION,
        sqlite_where=_HAS_ACTION,
    )
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column(
            "events",
            "idempotency_key",
            type_=sa.Text(collation="C"),
            existing_type=sa.Text(),
            existing_nullable=False,
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        # A type without COLLATE takes the type's default: the database's collation.
        op.alter_column(
            "events",
            "idempotency_key",
            type_=sa.Text(),
            existing_type=sa.Text(collation="C"),
            existing_nullable=False,
        )
    op.drop_index("ix_events_action_id", table_name="events")
    op.create_index("ix_events_action_id", "events", ["action_id"])
