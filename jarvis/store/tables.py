"""The store's tables on one shared `metadata`: events, retry ledger, kill switch.

Imported by the event store, the kill-switch backend and Alembic's env.py.
Other parts of Jarvis add their own tables to this same `metadata` (each with
its own migration revision), so it must stay importable from here. A new,
empty database gets `metadata.create_all` stamped at the head revision; any
other is upgraded by the migrations in `jarvis.store.migrations`, and a test
holds the two schemas equal (tests/store/test_migrations.py).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Dialect,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    TypeDecorator,
)
from sqlalchemy.types import TypeEngine

if TYPE_CHECKING:
    from sqlalchemy.dialects.postgresql import Insert as PostgresInsert
    from sqlalchemy.dialects.sqlite import Insert as SqliteInsert

__all__ = [
    "JsonDocument",
    "UtcDateTime",
    "events",
    "json_type",
    "killswitch",
    "leases",
    "metadata",
    "replicas",
    "retry_state",
    "upsert_into",
]

# Deterministic constraint names, so later migrations can alter them by name on
# both backends (SQLite's batch mode needs names to find constraints).
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware datetime that comes back aware, in UTC, on every backend.

    SQLite has no timezone type: values are stored as UTC text and given their
    timezone back on the way out. A naive datetime is refused, because its
    meaning depends on the host it was made on.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value.isoformat()} (store needs timezone-aware)")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(
        self,
        value: datetime | None,
        dialect: Dialect,  # noqa: ARG002 - the signature is SQLAlchemy's
    ) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class JsonDocument(TypeDecorator[Any]):
    """JSON on SQLite, JSONB on PostgreSQL (indexable, compact).

    A type that picks JSONB when it meets PostgreSQL, rather than
    ``JSON().with_variant(JSONB(), "postgresql")``: the variant needs the JSONB
    class when the tables are declared, and importing it loads SQLAlchemy's
    whole PostgreSQL dialect (19 modules) into every process that imports the
    store, a daemon on SQLite too (issue 16).
    """

    impl = JSON
    cache_ok = True
    # As JSON's own: a None is written as JSON ``null``, not left out as SQL NULL.
    should_evaluate_none = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import JSONB  # noqa: PLC0415 -- see above

            return dialect.type_descriptor(JSONB())
        return dialect.type_descriptor(JSON())


def json_type() -> Any:
    """JSON on SQLite, JSONB on PostgreSQL (`JsonDocument`)."""
    return JsonDocument()


def upsert_into(table: Table, dialect_name: str) -> PostgresInsert | SqliteInsert:
    """``INSERT INTO table``, with ``ON CONFLICT`` clauses, for ``postgresql`` or ``sqlite``.

    The one place the store picks a dialect's insert: each dialect is imported
    here, when a statement for it is first built, so a process on SQLite never
    loads the PostgreSQL dialect for it (issue 16).
    """
    if dialect_name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as postgres_insert  # noqa: PLC0415

        return postgres_insert(table)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert  # noqa: PLC0415

    return sqlite_insert(table)


events = Table(
    "events",
    metadata,
    Column(
        "id",
        # SQLite autoincrements only an INTEGER PRIMARY KEY, not a BIGINT one.
        BigInteger().with_variant(Integer, "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    Column("ts", UtcDateTime(), nullable=False),
    Column("tick_id", Text),
    Column("kind", Text, nullable=False),
    Column("resource", Text),
    Column("action_kind", Text),
    Column("policy", Text),
    Column("reason", Text),
    # Plain JSON, not JSONB, on PostgreSQL too: nothing queries inside a payload, and
    # parsing each one into JSONB cost the server 8 % of an ingest's COPY (0010).
    Column("payload", JSON(), nullable=False),
    Column("action_id", Text),
    # Byte order on PostgreSQL: no collation work per key written (migration 0009).
    Column(
        "idempotency_key",
        Text().with_variant(Text(collation="C"), "postgresql"),
        nullable=False,
        unique=True,
    ),
    # "Last N of a kind / of a resource" walks these backwards by id.
    Index(None, "kind", "id"),
    Index(None, "resource", "id"),
    # Reads by time (history, reports, budgets, fleet caps) walk this one.
    Index(None, "ts"),
    # The partial index on action_id is declared in `jarvis.store.indexes`.
)

retry_state = Table(
    "retry_state",
    metadata,
    Column("resource", Text, nullable=False),
    Column("action_kind", Text, nullable=False),
    Column("attempts", json_type(), nullable=False),
    Column("consecutive_failures", Integer, nullable=False),
    Column("retry_after", UtcDateTime()),
    Column("quarantined", Boolean, nullable=False),
    Column("last_error", Text, nullable=False),
    Column("updated_at", UtcDateTime()),
    PrimaryKeyConstraint("resource", "action_kind"),
)

killswitch = Table(
    "killswitch",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("engaged", Boolean, nullable=False),
    Column("actor", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("changed_at", UtcDateTime()),
    # Named as revision 0001 named it: the convention prefixed its full name
    # again, so databases carry ``ck_killswitch_ck_killswitch_single_row`` and a
    # new one created from this metadata must too.
    CheckConstraint("id = 1", name="ck_killswitch_single_row"),
)

leases = Table(
    "leases",
    metadata,
    Column("name", Text, primary_key=True),
    Column("holder", Text, nullable=False),
    Column("epoch", BigInteger, nullable=False),
    Column("acquired_at", UtcDateTime(), nullable=False),
    Column("renewed_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),
    Column("shards", Integer, nullable=True),
)
"""One row per lease (``loop``, or ``shard-0`` … with shards): who leads, under which
epoch, until when, and for a shard lease the shard count it was taken under. Times
are the database's own clock, so replicas' clocks never have to agree."""

replicas = Table(
    "replicas",
    metadata,
    Column("replica_id", Text, primary_key=True),
    Column("host", Text, nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", UtcDateTime(), nullable=False),
    Column("heartbeat_at", UtcDateTime(), nullable=False),
    Column("leader_epoch", BigInteger),
)
"""Each running replica's last heartbeat (for `jarvis status`); ``leader_epoch``
is set while it believes it leads."""
