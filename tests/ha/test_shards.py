"""Shards on real processes and real PostgreSQL: three `jarvis run` share six shards.

Kill one replica: its shards move to the other two within two lease periods
(measured on the database's clock, from the lease rows), the two then observe
the whole fleet between them, and the record shows
no resource acted on by two replicas at once: every intent was written under
the fence of its resource's shard, and one shard epoch belongs to one replica.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import anyio
import pytest
from sqlalchemy import func, select

from jarvis.loop.shards import shard_name, shard_of
from jarvis.store import EventStore
from jarvis.store.tables import leases
from tests.daemon import get
from tests.ha.test_replicas import (
    HANDOVER,
    LEASE,
    START,
    Replica,
    migrated_database,
    running_replicas,
    started_by,
    until,
)

SHARDS = 6
FLEET = 6.0
"""The embedded simulated fleet's six services (the README's quickstart)."""
DURATION = float(LEASE["JARVIS_LEASE__DURATION"])


@pytest.fixture
def pg_url() -> Iterator[str]:
    with migrated_database() as url:
        yield url


@pytest.fixture
def replicas(tmp_path: Path, pg_url: str) -> Iterator[list[Replica]]:
    names = ["r0", "r1", "r2"]
    with running_replicas(tmp_path, pg_url, names, JARVIS_LOOP__SHARDS=str(SHARDS)) as started:
        yield started


async def _lease_rows(url: str) -> tuple[datetime, dict[str, tuple[str, int, datetime]]]:
    store = await EventStore.connect(url)
    try:
        async with store.engine.connect() as connection:
            now = (await connection.execute(select(func.now()))).scalar_one()
            rows = await connection.execute(
                select(leases.c.name, leases.c.holder, leases.c.epoch, leases.c.acquired_at)
            )
            return now, {r.name: (r.holder, r.epoch, r.acquired_at) for r in rows}
    finally:
        await store.aclose()


def lease_rows(url: str) -> tuple[datetime, dict[str, tuple[str, int, datetime]]]:
    return anyio.run(_lease_rows, url)


def observed(group: list[Replica]) -> float:
    """Resources in the replicas' last snapshots (`jarvis_resources`, every label summed)."""
    total = 0.0
    for replica in group:
        try:
            _, text = get(f"http://127.0.0.1:{replica.port}/metrics")
        except OSError:
            return -1.0
        total += sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("jarvis_resources{")
        )
    return total


def held(group: list[Replica]) -> list[float | None]:
    return [r.metric("jarvis_shards_held") for r in group]


@pytest.mark.timeout(600)  # its own waits (start 90 s, handovers 60 s) pass the default 120
def test_a_dead_replicas_shards_move_within_two_leases_and_no_resource_has_two_actors(
    replicas: list[Replica], pg_url: str
) -> None:
    until(lambda: held(replicas) == [2.0, 2.0, 2.0], START + HANDOVER, "two shards each")
    until(lambda: len(started_by(pg_url)) >= 3, HANDOVER, "some actions")
    # The victim: the replica that acted most, so its shards hold resources that get actions.
    counts = Counter(e.payload.get("replica") for e in started_by(pg_url))
    victim = max(replicas, key=lambda r: counts[r.name])
    rest = [r for r in replicas if r is not victim]
    _, before = lease_rows(pg_url)
    lost = sorted(name for name, (holder, _, _) in before.items() if holder == victim.name)
    assert len(lost) == 2
    fleet = FLEET
    until(lambda: observed(replicas) == fleet, HANDOVER, "the three to tick the fleet")
    victim.process.kill()
    victim.process.wait()
    killed_at, _ = lease_rows(pg_url)  # the database's clock, just after the kill

    until(lambda: held(rest) == [3.0, 3.0], HANDOVER, "the survivors to hold three each")
    _, after = lease_rows(pg_url)
    for name in lost:
        holder, epoch, acquired_at = after[name]
        assert holder in {r.name for r in rest}
        assert epoch > before[name][1]
        moved = (acquired_at - killed_at).total_seconds()
        assert moved <= 2 * DURATION, f"{name} moved {moved:.1f} s after the kill"
    # The survivors now tick the moved shards' resources: together they observe the fleet.
    until(lambda: observed(rest) == fleet, HANDOVER, f"the survivors to tick all {fleet}")

    # One replica per shard epoch, and a shard's epochs never overlap in time: no
    # resource was acted on by two replicas at once, during the handover or ever.
    spans: dict[tuple[str, int], tuple[str, datetime, datetime]] = {}
    for event in started_by(pg_url):
        resource = event.resource or ""
        shard = shard_name(shard_of(resource, SHARDS))
        replica, epochs = event.payload.get("replica"), event.payload.get("shards")
        assert isinstance(replica, str) and isinstance(epochs, dict), event.payload
        assert shard in epochs, f"{resource}: written without its shard's fence {epochs}"
        key = (shard, int(epochs[shard]))
        who, low, high = spans.get(key, (replica, event.ts, event.ts))
        assert who == replica, f"{key} used by {who} and {replica}"
        spans[key] = (who, min(low, event.ts), max(high, event.ts))
    for shard in {name for name, _ in spans}:
        ordered = [spans[key] for key in sorted(k for k in spans if k[0] == shard)]
        for (_, _, end), (_, begin, _) in itertools.pairwise(ordered):
            assert end < begin, f"{shard}: epochs overlap: {ordered}"
