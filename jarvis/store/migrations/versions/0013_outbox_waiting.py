"""Which pending notifications wait behind an older one, and an index of those that do not.

Revision ID: 0013_outbox_waiting
Revises: 0012_outbox_pending_index
Create Date: 2026-11-30

Only the oldest pending row of an incident on a channel can be sent
(`jarvis.store.outbox`). A claim looked up every due pending row in 0012's index
to find that out, and while a receiver is down every row behind the oldest is
due: at 50,000 pending a claim took 278 ms on PostgreSQL (115x an empty outbox,
`bench/outbox.py`). ``waiting`` marks the rows behind an older pending one; the
claim walks the others, oldest first, through their own partial index, however
many wait. The rows already pending are marked here as the outbox marks them.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013_outbox_waiting"
down_revision: str | Sequence[str] | None = "0012_outbox_pending_index"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_INDEX = "ix_notifications_id"


def upgrade() -> None:
    op.add_column(
        "notifications",
        sa.Column("waiting", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.execute(
        "UPDATE notifications SET waiting = true WHERE status = 'pending' AND EXISTS ("
        "SELECT 1 FROM notifications AS earlier WHERE earlier.status = 'pending'"
        " AND earlier.channel = notifications.channel"
        " AND earlier.incident = notifications.incident AND earlier.id < notifications.id)"
    )
    op.create_index(
        _INDEX,
        "notifications",
        ["id"],
        postgresql_where=sa.text("status = 'pending' AND NOT waiting"),
        sqlite_where=sa.text("status = 'pending' AND waiting = 0"),
    )


def downgrade() -> None:
    op.drop_index(_INDEX, table_name="notifications")
    op.drop_column("notifications", "waiting")
