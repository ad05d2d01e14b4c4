"""A replica with shards and one without, on one database: still one actor per resource.

A rolling update that turns `loop.shards` on (or a replica whose environment
lacks it) runs a replica under the unsharded `loop` lease beside replicas
under the shard leases. Before, the two kinds of lease ignored each other:
both replicas led, and both acted on every resource. Real processes; the
record is the judge (every intent names the replica that wrote it).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ha.test_replicas import (
    HANDOVER,
    START,
    Replica,
    acted,
    migrated_database,
    running_replicas,
    started_by,
    until,
)


@pytest.fixture
def pg_url() -> Iterator[str]:
    with migrated_database() as url:
        yield url


def leads(replica: Replica) -> bool:
    return bool(replica.metric("jarvis_leader"))


@pytest.mark.timeout(600)  # two daemons on a loaded machine, and ticks to watch
def test_a_sharded_and_an_unsharded_replica_never_both_act(tmp_path: Path, pg_url: str) -> None:
    with (
        running_replicas(tmp_path, pg_url, ["sharded"], JARVIS_LOOP__SHARDS="2") as [sharded],
        running_replicas(tmp_path, pg_url, ["whole"]) as [whole],
    ):
        group = [sharded, whole]
        until(lambda: all(r.metric("jarvis_leader") is not None for r in group), START, "/metrics")
        first = until(lambda: next((r for r in group if acted(pg_url, r.name)), None), HANDOVER,
                      "a replica to act")  # fmt: skip
        assert isinstance(first, Replica)
        ticks = first.metric("jarvis_ticks_total", outcome="ok") or 0.0
        until(
            lambda: (first.metric("jarvis_ticks_total", outcome="ok") or 0.0) >= ticks + 8,
            HANDOVER,
            "the acting replica to tick on",
        )
        other = whole if first is sharded else sharded
        assert not leads(other), f"{other.name} leads beside {first.name}"
        # Read while both still run: once the first is stopped, the other taking
        # over (and acting) is the handover working, not two actors.
        writers = {str(e.payload.get("replica")) for e in started_by(pg_url)}
    assert writers == {first.name}, writers


@pytest.mark.timeout(600)  # two daemons on a loaded machine, and ticks to watch
def test_replicas_with_different_shard_counts_never_both_lead(tmp_path: Path, pg_url: str) -> None:
    """A rolling update from 2 shards to 4 runs both counts for a while.

    ``shard-1`` of two and ``shard-1`` of four hold different resources, and a
    resource in shard 0 of two is in shard 0 or 2 of four: before, a replica of
    each count took leases side by side, both led, and both acted on the
    resources their shards shared. Now the leases of one count are not taken
    while the other's are live.
    """
    with (
        running_replicas(tmp_path, pg_url, ["two"], JARVIS_LOOP__SHARDS="2") as [two],
        running_replicas(tmp_path, pg_url, ["four"], JARVIS_LOOP__SHARDS="4") as [four],
    ):
        group = [two, four]
        until(lambda: all(r.metric("jarvis_leader") is not None for r in group), START, "/metrics")
        first = until(lambda: next((r for r in group if leads(r)), None), HANDOVER, "a leader")
        assert isinstance(first, Replica)
        other = four if first is two else two
        ticks = first.metric("jarvis_ticks_total", outcome="ok") or 0.0
        deadline = time.monotonic() + HANDOVER
        while (first.metric("jarvis_ticks_total", outcome="ok") or 0.0) < ticks + 8:
            assert not leads(other), f"{other.name} leads beside {first.name}"
            assert time.monotonic() < deadline, f"{first.name} stopped ticking"
            time.sleep(0.2)
        # Read while both still run (see the test above).
        other_acted = acted(pg_url, other.name)
    assert not other_acted
