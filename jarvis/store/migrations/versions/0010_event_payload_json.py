"""Event payloads as ``json`` rather than ``jsonb`` on PostgreSQL.

Revision ID: 0010_event_payload_json
Revises: 0009_event_indexes
Create Date: 2026-11-29

At ingest the server parsed every payload into JSONB's binary form: about
0.55 µs of its 7.15 µs of CPU per row, 8 % of an ingest that is bound by the
server (issue 16, docs/benchmarks.md, benchmark 3). Nothing reads inside a
payload in SQL: no operator, no index, no query filters on it; every reader
takes the whole document back and decodes it in Python, where ``json``
gives the same dict (its text is what Jarvis wrote, keys in their order).
``json`` only checks the text is valid JSON, so the column keeps refusing
anything else.

On PostgreSQL the upgrade rewrites the ``events`` table once, holding its
lock while it does: on a large table, upgrade in a maintenance window (or
prune first with ``jarvis db prune``). SQLite stores JSON as text either way
and is not touched.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0010_event_payload_json"
down_revision: str | Sequence[str] | None = "0009_event_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE events ALTER COLUMN payload TYPE json USING payload::json")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE events ALTER COLUMN payload TYPE jsonb USING payload::jsonb")
