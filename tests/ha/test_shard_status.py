"""`jarvis status` with shards: each shard lease's holder, epoch and expiry, and
the replicas (whose heartbeats name no leader epoch) still listed and pruned.

Real PostgreSQL, two `ShardElector`s stepped by hand: no processes, no clock.
"""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest
from sqlalchemy import func, update

from jarvis.cli.status import status_json
from jarvis.loop.shards import ShardElector
from jarvis.store import EventStore
from jarvis.store.lease import FORGET_REPLICAS_AFTER, PgLease, lease_status
from jarvis.store.tables import replicas
from jarvis.telemetry.metrics import Metrics
from tests.cli.conftest import jarvis_argv, jarvis_env

pytestmark = pytest.mark.anyio

LONG = 600.0


def elector(store: EventStore, holder: str, shards: int) -> ShardElector:
    return ShardElector(
        store.engine,
        holder,
        Metrics(),
        shards=shards,
        duration=LONG,
        renew_deadline=LONG / 2,
        retry_period=1.0,
    )


async def status_cli(tmp_path: Path, pg_url: str, *args: str, shards: int = 10) -> str:
    env = jarvis_env(tmp_path, JARVIS_DATABASE_URL=pg_url, JARVIS_LOOP__SHARDS=str(shards))
    with anyio.fail_after(120):
        done = await anyio.run_process(jarvis_argv("status", *args), env=env, check=False)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode()


async def test_status_shows_each_shard_lease_and_which_replica_holds_it(
    pg_url: str, tmp_path: Path
) -> None:
    store = await EventStore.connect(pg_url, auto_migrate=True)
    try:
        a, b = elector(store, "a", 10), elector(store, "b", 10)
        await a.step()  # no heartbeat yet: takes nothing, then beats
        await b.step()  # one live replica (a): b's fair share is all ten
        await a.step()  # two live: all held by b, nothing free
        await b.step()  # b marks five as surplus ...
        await b.hand_over()  # ... and releases them between ticks
        await a.step()  # a takes its five
        report = status_json(await lease_status(store.engine), LONG)
        shards = report["shards"]
        assert [s["shard"] for s in shards] == [f"shard-{i}" for i in range(10)]
        assert all(s["holder"] in {"a", "b"} and s["epoch"] >= 1 for s in shards)
        assert all(0 < s["lease_expires_in_seconds"] <= LONG for s in shards)
        held = {r["replica"]: r["shards"] for r in report["replicas"]}
        assert sorted(held) == ["a", "b"]
        assert len(held["a"]) == len(held["b"]) == 5
        assert sorted(held["a"] + held["b"]) == sorted(s["shard"] for s in shards)
        assert report["leader"] is None  # no unsharded loop lease with shards
        assert all(r["alive"] and r["leader_epoch"] is None for r in report["replicas"])
        # The command itself, as an operator runs it.
        shown = json.loads(await status_cli(tmp_path, pg_url, "--json"))
        assert [(s["shard"], s["holder"]) for s in shown["shards"]] == [
            (s["shard"], s["holder"]) for s in shards
        ]
        text = (await status_cli(tmp_path, pg_url)).splitlines()
        assert text[0] == "shards: 10 of 10 held"
        assert sum(1 for line in text if line.strip().startswith("shard-")) == 10
        assert any(
            line.strip().startswith("a ") and "holds 5 of 10 shards" in line for line in text
        )
    finally:
        await store.aclose()


async def test_a_replica_holding_shards_forgets_long_silent_replicas(pg_url: str) -> None:
    """Heartbeats carry no leader epoch with shards; the silent rows must still go."""
    store = await EventStore.connect(pg_url, auto_migrate=True)
    try:
        await PgLease(store.engine, "gone", duration=LONG).heartbeat(None)
        async with store.engine.begin() as connection:
            await connection.execute(
                update(replicas).values(heartbeat_at=func.now() - FORGET_REPLICAS_AFTER * 2)
            )
        alive = elector(store, "alive", 2)
        await alive.step()  # beats, holds nothing yet: prunes nothing
        assert len((await lease_status(store.engine)).replicas) == 2
        await alive.step()  # holds both shards now: prunes as a leader would
        status = await lease_status(store.engine)
        assert [r.replica_id for r in status.replicas] == ["alive"]
        assert [(s.name, s.holder) for s in status.shards] == [
            ("shard-0", "alive"),
            ("shard-1", "alive"),
        ]
    finally:
        await store.aclose()


async def test_status_counts_every_configured_shard_and_names_those_never_leased(
    pg_url: str, tmp_path: Path
) -> None:
    """Of four shards, one leased: "1 of 4 held", the other three named unheld.

    It counted only the lease rows there were ("1 of 1 held"): a shard no
    replica ever took had no row and was not counted unheld at all.
    """
    store = await EventStore.connect(pg_url, auto_migrate=True)
    try:
        lease = PgLease(store.engine, "a", duration=LONG, name="shard-1", shards=4)
        assert await lease.acquire() is not None
        await lease.heartbeat(None)
        text = (await status_cli(tmp_path, pg_url, shards=4)).splitlines()
        assert text[0] == "shards: 1 of 4 held; unheld: shard-0, shard-2, shard-3", text
        assert [line.split()[0] for line in text[1:5]] == [f"shard-{i}" for i in range(4)]
        assert "never leased" in text[1] and "never leased" in text[3]
        assert any(line.strip().startswith("a ") and "holds 1 of 4 shards" in line for line in text)
        shown = json.loads(await status_cli(tmp_path, pg_url, "--json", shards=4))
        assert [(s["shard"], s["holder"]) for s in shown["shards"]] == [
            ("shard-0", None),
            ("shard-1", "a"),
            ("shard-2", None),
            ("shard-3", None),
        ]
        assert shown["unheld_shards"] == ["shard-0", "shard-2", "shard-3"]
        # A shell whose configuration names no shards counts those the leases were taken under.
        bare = (await status_cli(tmp_path, pg_url, shards=1)).splitlines()
        assert bare[0] == text[0], bare
    finally:
        await store.aclose()
