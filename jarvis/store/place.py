"""The database as every store message names it, and why it did not answer, in one line.

The SQL backend and the migration helpers name it from SQLAlchemy's URL
(`jarvis.store.engine.location`, `unreachable`); `jarvis plan`'s reader
(`jarvis.store.readonly`) from the URL string, without importing SQLAlchemy.
Both go through `Place`, so an operator reads the same words whichever path
failed: the SQLite file, or PostgreSQL's server and database, never a password,
and the driver's reason alone (`jarvis.store.errors.describe`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from jarvis.store.errors import (
    CredentialsRefusedError,
    StoreError,
    credentials_refused,
    describe,
    insufficient_privilege,
    no_such_database,
    not_a_database,
    refuses_writes,
    unopenable,
)

__all__ = ["Place", "is_file"]


def is_file(database: str | None) -> bool:
    """Whether a SQLite URL's database names a file (not memory, not a ``file:`` URI)."""
    if not database:
        return False
    return database != ":memory:" and not database.startswith("file:")


@dataclass(frozen=True, slots=True)
class Place:
    """What a message says of a database URL: its kind, file or server and database, and
    the user (for a refusal); never the password."""

    sqlite: bool
    database: str | None
    host: str | None = None
    port: int | None = None
    username: str | None = None

    @classmethod
    def of(cls, url: str) -> Place:
        """The place of ``url`` as SQLAlchemy's ``make_url`` reads it, without importing it."""
        parts = urlsplit(url)
        database = unquote(parts.path[1:]) if parts.path else None
        return cls(
            sqlite=parts.scheme.split("+")[0] == "sqlite",
            database=database or None,
            host=parts.hostname,
            port=parts.port,
            username=None if parts.username is None else unquote(parts.username),
        )

    @property
    def server(self) -> str:
        return f"{self.host or 'localhost'}:{self.port or 5432}"

    @property
    def where(self) -> str:
        """The SQLite file, or PostgreSQL's server and database."""
        if self.sqlite:
            return f"SQLite database {self.database}"
        return f"PostgreSQL at {self.server} (database {self.database or '-'})"

    def unreachable(self, exc: BaseException) -> StoreError:
        """A one-line error naming where the database was expected and why it did not answer."""
        if self.sqlite:
            if not_a_database(exc):
                return StoreError(f"{self.where} is not usable: {describe(exc)}")
            trouble = unopenable(Path(self.database or "")) if is_file(self.database) else None
            if trouble is not None:
                return trouble
        else:
            refused = self._refused_connection(exc)
            if refused is not None:
                return refused
        if refuses_writes(exc):
            return StoreError(f"{self.where} refuses writes: {describe(exc)}")
        if insufficient_privilege(exc) and self.username:
            # The server answered: the role lacks a grant, which no wait brings back.
            return StoreError(f"{self.where} refuses user {self.username}: {describe(exc)}")
        return StoreError(f"cannot reach {self.where}: {describe(exc)}")

    def _refused_connection(self, exc: BaseException) -> StoreError | None:
        """Why PostgreSQL answered and refused to connect, when it did: "cannot reach" would
        send the operator to the network, and no wait fixes either.

        No such database (3D000), or the role, its password or this host refused
        (SQLSTATE 28xxx), named by role, server and database; the password is never in it
        (the server's message names the user alone).
        """
        if no_such_database(exc):
            return StoreError(
                f"PostgreSQL at {self.server} has no database {self.database!r}: create it "
                f"(createdb {self.database}), then run `jarvis db upgrade`"
            )
        if not credentials_refused(exc):
            return None
        role = f"role {self.username}" if self.username else "no role in the URL: the OS user's"
        return CredentialsRefusedError(
            f"PostgreSQL at {self.server} refused these credentials ({role}, database "
            f"{self.database or '-'}): {describe(exc)}; fix the user or password in "
            "database_url, or pg_hba.conf if the server refuses this host"
        )
