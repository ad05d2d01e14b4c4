"""A fresh PostgreSQL database for one benchmark, created and dropped around it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from common import PG_ADMIN_URL


def _plain(url: str) -> str:
    return url.replace("postgresql+asyncpg", "postgresql")


@asynccontextmanager
async def fresh_database(prefix: str = "jarvis_bench") -> AsyncIterator[str]:
    """Yield a SQLAlchemy URL to a new empty database; drop it afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(_plain(PG_ADMIN_URL))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield urlunsplit(urlsplit(PG_ADMIN_URL)._replace(path=f"/{name}"))
    finally:
        admin = await asyncpg.connect(_plain(PG_ADMIN_URL))
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()
