"""One reading of an operator's database URL, for every engine and every direct connection.

Operators copy PostgreSQL URLs from their provider's documentation, with
libpq's parameters: ``?sslmode=require``, ``?options=-csearch_path%3Djarvis``,
a server setting. SQLAlchemy's asyncpg dialect hands each URL parameter to
``asyncpg.connect`` as a keyword argument, which asyncpg does not take
("connect() got an unexpected keyword argument 'sslmode'"). Here they reach
asyncpg's own DSN parser; SQLAlchemy keeps the parameters it reads itself.
Every engine Jarvis makes from a URL (the event store's, the LLM usage
table's, the customers' and the product database's) comes from
`async_engine`, and every direct asyncpg connection (`jarvis.store.direct`:
`jarvis killswitch`, `jarvis plan`) from `asyncpg_dsn`, so a URL means the
same on each: asyncpg's parser took SQLAlchemy's own parameters for server
settings, which the server refused.

SQLAlchemy is imported by `async_engine` alone, not with this module: the
direct paths exist to spare an operator its import.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

if TYPE_CHECKING:
    from sqlalchemy.engine import URL
    from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["async_engine", "asyncpg_dsn"]

_SQLALCHEMY_PARAMETERS = frozenset({"prepared_statement_cache_size"})
"""URL parameters SQLAlchemy's asyncpg dialect reads itself (0 behind pgbouncer)."""


def async_engine(
    url: str | URL, *, connect_args: Mapping[str, Any] | None = None, **options: Any
) -> AsyncEngine:
    """``create_async_engine(url, connect_args=..., **options)``, libpq's parameters read.

    On asyncpg, the URL's parameters other than SQLAlchemy's own go to asyncpg
    as a DSN beside ``connect_args``; host, user, password and database still
    come as keywords, which take precedence, and a ``server_settings`` in
    ``connect_args`` is merged over the ones the DSN names.
    """
    from sqlalchemy.engine import make_url  # noqa: PLC0415 -- see the module docstring
    from sqlalchemy.ext.asyncio import create_async_engine  # noqa: PLC0415 -- the same

    parsed = make_url(url)
    args = dict(connect_args or {})
    if parsed.get_driver_name() == "asyncpg":
        pairs = [
            (name, value)
            for name, values in parsed.query.items()
            for value in ((values,) if isinstance(values, str) else values)
        ]
        libpq = _libpq_query(pairs)
        if libpq:
            args["dsn"] = f"postgresql://?{libpq}"
            parsed = parsed.set(
                query={k: v for k, v in parsed.query.items() if k in _SQLALCHEMY_PARAMETERS}
            )
    return create_async_engine(parsed, connect_args=args, **options)


def asyncpg_dsn(url: str) -> str:
    """``url`` as ``asyncpg.connect`` reads it: scheme ``postgresql`` (no ``+asyncpg``),
    and of the parameters, libpq's and server settings only."""
    parts = urlsplit(url)
    query = _libpq_query(parse_qsl(parts.query, keep_blank_values=True))
    return urlunsplit(parts._replace(scheme="postgresql", query=query))


def _libpq_query(pairs: Iterable[tuple[str, str]]) -> str:
    """The parameters asyncpg's DSN parser is to read, encoded: all but SQLAlchemy's own."""
    return urlencode([(name, value) for name, value in pairs if name not in _SQLALCHEMY_PARAMETERS])
