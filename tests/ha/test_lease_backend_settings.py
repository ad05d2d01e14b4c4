"""Which lease backend elects, and the combinations it refuses in one line."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from jarvis.config import ConfigError, load_settings
from jarvis.loop.leases import KubeLease, lease_backend
from jarvis.store.lease import PgLease
from tests.cli.conftest import jarvis_argv, jarvis_env

PG = "postgresql+asyncpg://nobody@127.0.0.1:1/none"  # never connected to


@pytest.mark.anyio
async def test_the_default_backend_is_the_postgresql_row() -> None:
    """Without lease.backend the row elects, as before."""
    engine = create_async_engine(PG)
    try:
        backend = lease_backend(load_settings(database_url=PG), engine, "r1")
        assert isinstance(backend, PgLease)
    finally:
        await engine.dispose()


@pytest.mark.anyio
async def test_the_kubernetes_backend_reaches_the_cluster_the_kubernetes_section_names() -> None:
    """lease.backend = "kubernetes" builds a Lease lock on [kubernetes]'s API server."""
    engine = create_async_engine(PG)
    settings = load_settings(
        database_url=PG,
        lease={"backend": "kubernetes", "kubernetes_namespace": "ops", "kubernetes_lease": "j"},
        kubernetes={"host": "http://127.0.0.1:1", "token": "t"},
    )
    try:
        backend = lease_backend(settings, engine, "r1")
        assert isinstance(backend, KubeLease)
        assert (backend.name, backend.holder) == ("loop", "r1")
        backend.lock.close()
    finally:
        await engine.dispose()


@pytest.mark.anyio
async def test_the_kubernetes_backend_refuses_shards() -> None:
    """One Lease elects one leader; shards need a lease each, which only the row backend has."""
    engine = create_async_engine(PG)
    settings = load_settings(
        database_url=PG,
        lease={"backend": "kubernetes"},
        loop={"shards": 4},
        kubernetes={"host": "http://127.0.0.1:1", "token": "t"},
    )
    try:
        with pytest.raises(ConfigError, match=r"loop\.shards = 4"):
            lease_backend(settings, engine, "r1")
    finally:
        await engine.dispose()


def test_a_kubernetes_lease_on_sqlite_exits_2_with_one_line(tmp_path: Path) -> None:
    """On SQLite there is one node and nothing to fence with: refused before anything starts."""
    env = jarvis_env(tmp_path, JARVIS_LEASE__BACKEND="kubernetes")
    done = subprocess.run(
        jarvis_argv("run", "--http-port", "0"),
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert 'lease.backend = "kubernetes"' in lines[0]
    assert "SQLite" in lines[0]
