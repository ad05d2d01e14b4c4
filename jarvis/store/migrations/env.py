"""Alembic's environment for the store's migrations, run by `jarvis.store.migrate`.

`upgrade()` hands Alembic an open connection (``config.attributes["connection"]``)
from the store's async engine; run that way, this module only configures the
context and runs the revisions. Run by the ``alembic`` command instead (with a
``sqlalchemy.url`` option), it builds the same async engine itself.

Every module of `jarvis.store` is imported so that each table defined on the
shared `metadata` (``events``…, ``llm_usage`` from `jarvis.store.usage`) is
known to autogenerate; a module that does not exist yet is simply absent.
"""

from __future__ import annotations

import asyncio
import importlib
import pkgutil

from alembic import context
from sqlalchemy.engine import Connection

import jarvis.store
from jarvis.store.engine import create_engine, normalize_url
from jarvis.store.tables import metadata


def _import_table_modules() -> None:
    for module in pkgutil.iter_modules(jarvis.store.__path__, prefix="jarvis.store."):
        if not module.ispkg:
            importlib.import_module(module.name)


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_with_own_engine(url: str) -> None:
    engine = create_engine(normalize_url(url))
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
            await connection.commit()
    finally:
        await engine.dispose()


def _main() -> None:
    _import_table_modules()
    config = context.config
    connection = config.attributes.get("connection")
    if isinstance(connection, Connection):
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("set sqlalchemy.url, or run migrations through jarvis.store.upgrade")
    if context.is_offline_mode():
        context.configure(url=url, target_metadata=metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    asyncio.run(_run_with_own_engine(url))


_main()
