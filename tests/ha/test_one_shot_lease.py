"""`jarvis tick` and `jarvis deploy` on PostgreSQL act only while holding the lease.

Before, a one-shot tick beside running replicas acted as a second actor, with
no lease and no fence. Now it takes the lease for its tick (and releases it),
or exits 2 naming the replica that leads; a dry run needs no lease.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from jarvis.model import EventKind
from jarvis.store import EventStore
from jarvis.store.lease import PgLease, lease_status
from tests.cli.conftest import jarvis_argv, jarvis_env
from tests.conftest import create_pg_database, drop_pg_database


@pytest.fixture
def pg_url() -> Iterator[str]:
    url = anyio.run(create_pg_database)
    try:
        yield url
    finally:
        anyio.run(drop_pg_database, url)


async def lead(url: str) -> None:
    store = await EventStore.connect(url, auto_migrate=True)
    try:
        assert await PgLease(store.engine, "r0", duration=600).acquire() == 1
    finally:
        await store.aclose()


async def intents_and_lease(url: str) -> tuple[list[dict[str, object]], bool]:
    store = await EventStore.connect(url, auto_migrate=True)
    try:
        started = await store.events(kinds=[EventKind.ACTION_STARTED.value])
        status = await lease_status(store.engine)
        held = status.lease is not None and status.lease.expires_at > status.now
        return [dict(e.payload) for e in started], held
    finally:
        await store.aclose()


def jarvis(tmp_path: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        jarvis_argv(*args),
        cwd=tmp_path,
        env=jarvis_env(tmp_path, JARVIS_DATABASE_URL=url),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_one_shot_beside_a_leader_exits_2_and_acts_not(tmp_path: Path, pg_url: str) -> None:
    anyio.run(lead, pg_url)
    done = jarvis(tmp_path, pg_url, "deploy", "sim://ai-dawg-producer", "--image", "img:2")
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "r0 leads the loop" in lines[0]
    assert anyio.run(intents_and_lease, pg_url)[0] == []

    dry = jarvis(tmp_path, pg_url, "tick", "--dry-run")
    assert dry.returncode == 0, dry.stderr


def test_a_one_shot_alone_acts_under_its_own_epoch_and_releases(
    tmp_path: Path, pg_url: str
) -> None:
    anyio.run(lambda: upgrade_only(pg_url))
    done = jarvis(tmp_path, pg_url, "deploy", "sim://ai-dawg-producer", "--image", "img:2")
    assert done.returncode == 0, done.stdout + done.stderr
    intents, held = anyio.run(intents_and_lease, pg_url)
    assert [(i["epoch"], str(i["replica"]).startswith("jarvis-deploy@")) for i in intents] == [
        (1, True)
    ]
    assert not held  # released: a daemon may lead at once


async def upgrade_only(url: str) -> None:
    store = await EventStore.connect(url, auto_migrate=True)
    await store.aclose()


def test_a_one_shot_with_shards_exits_2_and_acts_not(tmp_path: Path, pg_url: str) -> None:
    """With shards the `loop` lease fences nobody's shards: a one-shot would act beside them."""
    anyio.run(lambda: upgrade_only(pg_url))
    done = subprocess.run(
        jarvis_argv("deploy", "sim://ai-dawg-producer", "--image", "img:2"),
        cwd=tmp_path,
        env=jarvis_env(tmp_path, JARVIS_DATABASE_URL=pg_url, JARVIS_LOOP__SHARDS="4"),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "loop.shards = 4" in lines[0]
    assert anyio.run(intents_and_lease, pg_url)[0] == []


async def hold_a_shard(url: str) -> None:
    store = await EventStore.connect(url, auto_migrate=True)
    try:
        lease = PgLease(store.engine, "s0", duration=600, name="shard-1", shards=2)
        assert await lease.acquire() == 1
    finally:
        await store.aclose()


def test_a_one_shot_without_shards_beside_sharded_replicas_exits_2_and_acts_not(
    tmp_path: Path, pg_url: str
) -> None:
    """An operator's `jarvis deploy` whose configuration lacks `loop.shards` does not take the
    free `loop` lease beside replicas holding shards (before, it did, and acted beside them)."""
    anyio.run(hold_a_shard, pg_url)
    done = jarvis(tmp_path, pg_url, "deploy", "sim://ai-dawg-producer", "--image", "img:2")
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "s0 holds shard-1" in lines[0]
    assert anyio.run(intents_and_lease, pg_url)[0] == []
