"""A replica with shards and one without, on one database: still one actor per resource.

A rolling update that turns `loop.shards` on (or a replica whose environment
lacks it) runs a replica under the unsharded `loop` lease beside replicas
under the shard leases. Before, the two kinds of lease ignored each other:
both replicas led, and both acted on every resource. Real processes; the
record is the judge (every intent names the replica that wrote it).
"""

from __future__ import annotations

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
    writers = {str(e.payload.get("replica")) for e in started_by(pg_url)}
    assert writers == {first.name}, writers
