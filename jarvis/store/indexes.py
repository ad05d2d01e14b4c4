"""The store's partial indexes, put on the shared `metadata` when this module is imported.

Imported where the schema itself is needed, not where rows are read or written:
by `jarvis.store.migrate` before it creates a new database's tables (and checks
a database's names against Jarvis's), and by Alembic's env.py and the schema
tests, which import every module of `jarvis.store`. Migrations 0009, 0012 and
0013 create these indexes on databases that are upgraded instead.

They live apart from their tables because a ``postgresql_where`` makes
SQLAlchemy import its whole PostgreSQL dialect (19 modules) to check the
keyword, in every process that declares it: a daemon on SQLite, or a one-shot
command, paid that at each start for an index it only uses when it creates
its database (issue 16; `tests/cli/test_import_cost.py`).
"""

from __future__ import annotations

from sqlalchemy import Index, text

from jarvis.store.outbox import PENDING, notifications
from jarvis.store.tables import events

__all__ = ["EVENT_ACTION_ID", "PENDING_BY_INCIDENT", "READY_TO_GO"]

_HAS_ACTION = text("action_id IS NOT NULL")
_PENDING = text(f"status = '{PENDING}'")

EVENT_ACTION_ID = Index(
    None, events.c.action_id, postgresql_where=_HAS_ACTION, sqlite_where=_HAS_ACTION
)
"""Only action events carry an action id; every reader asks for one equal to another's."""

PENDING_BY_INCIDENT = Index(
    None,
    notifications.c.channel,
    notifications.c.incident,
    notifications.c.id,
    postgresql_where=_PENDING,
    sqlite_where=_PENDING,
)
"""Of each due notification: is an older row of its incident pending on its channel
(`jarvis.store.outbox`'s ``_due``)? One lookup here, where a backlog of hours would
otherwise be read once per candidate."""

READY_TO_GO = Index(
    None,
    notifications.c.id,
    postgresql_where=text(f"status = '{PENDING}' AND NOT waiting"),
    sqlite_where=text(f"status = '{PENDING}' AND waiting = 0"),
)
"""The rows that can go once due, one per incident and channel, oldest first: what a
claim reads (`_due`), however many rows wait behind them. By id, not by next attempt:
a planner that takes due pending rows for common (the sent history and the rows
waiting are all due) walks an index in the claim's order, and this is the one whose
walk is short."""
