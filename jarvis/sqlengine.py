"""One way to make an async SQLAlchemy engine from an operator's database URL.

Operators copy PostgreSQL URLs from their provider's documentation, with
libpq's parameters: ``?sslmode=require``, ``?options=-csearch_path%3Djarvis``,
a server setting. SQLAlchemy's asyncpg dialect hands each URL parameter to
``asyncpg.connect`` as a keyword argument, which asyncpg does not take
("connect() got an unexpected keyword argument 'sslmode'"). Here they reach
asyncpg's own DSN parser, as on the direct paths (`jarvis.store.direct`);
SQLAlchemy keeps the parameters it reads itself. Every engine Jarvis makes
from a URL (the event store's, the LLM usage table's, the customers' and the
product database's) comes from `async_engine`, so a URL means the same on each.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

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
    parsed = make_url(url)
    args = dict(connect_args or {})
    if parsed.get_driver_name() == "asyncpg":
        libpq = {k: v for k, v in parsed.query.items() if k not in _SQLALCHEMY_PARAMETERS}
        if libpq:
            args["dsn"] = f"postgresql://?{urlencode(libpq, doseq=True)}"
            parsed = parsed.set(
                query={k: v for k, v in parsed.query.items() if k in _SQLALCHEMY_PARAMETERS}
            )
    return create_async_engine(parsed, connect_args=args, **options)
