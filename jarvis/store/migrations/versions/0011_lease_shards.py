"""The shard count each shard lease was taken under.

Revision ID: 0011_lease_shards
Revises: 0010_event_payload_json
Create Date: 2026-11-30

A resource's shard is its hash modulo the count (`jarvis.loop.shards.shard_of`),
so ``shard-1`` of two and ``shard-1`` of four hold different resources, and
the resources of shard 0 of two are those of shards 0 and 2 of four. During a
rolling update that changes ``loop.shards`` both counts run at once; each
replica took the free rows of its own count and acted on what the other's
rows also held. With the count on the row, a shard lease is not taken while
a live one of another count (or none recorded: a replica older than this
revision) exists (`jarvis.store.lease.PgLease.acquire`). Nullable: the
``loop`` lease has no count.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_lease_shards"
down_revision: str | Sequence[str] | None = "0010_event_payload_json"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("leases", sa.Column("shards", sa.Integer(), nullable=True))


def downgrade() -> None:
    op.drop_column("leases", "shards")
