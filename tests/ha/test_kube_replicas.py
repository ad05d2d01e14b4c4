"""Two `jarvis run` processes electing through a Kubernetes Lease, fenced by PostgreSQL.

Real processes, the official client in each against the fake API server (which
serves Leases with resourceVersion concurrency), a real database. The leader is
paused (SIGSTOP) past its Lease; the other takes the Lease and the row's next
epoch; the woken one applies nothing and steps down. The record judges: every
`action.started` names the replica and epoch it was written under.
"""

from __future__ import annotations

import itertools
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from jarvis.store import EventStore
from jarvis.store.lease import lease_status
from tests.ha.test_replicas import (
    HANDOVER,
    START,
    Replica,
    acted,
    migrated_database,
    running_replicas,
    started_by,
    the_leader,
    until,
)
from tests.kubernetes.fake_apiserver import FakeApiServer

TOKEN = "lease-test-token"


@pytest.fixture
def pg_url() -> Iterator[str]:
    with migrated_database() as url:
        yield url


@pytest.fixture
def apiserver() -> Iterator[FakeApiServer]:
    with FakeApiServer(token=TOKEN) as server:
        yield server


@pytest.fixture
def replicas(tmp_path: Path, pg_url: str, apiserver: FakeApiServer) -> Iterator[list[Replica]]:
    with running_replicas(
        tmp_path,
        pg_url,
        ["k0", "k1"],
        JARVIS_LEASE__BACKEND="kubernetes",
        JARVIS_KUBERNETES__HOST=apiserver.url,
        JARVIS_KUBERNETES__TOKEN=TOKEN,
        JARVIS_SIMULATED__ENABLED="true",
    ) as started:
        yield started


async def row_of(url: str) -> tuple[str, int]:
    store = await EventStore.connect(url)
    try:
        status = await lease_status(store.engine)
    finally:
        await store.aclose()
    assert status.lease is not None
    return status.lease.holder, status.lease.epoch


@pytest.mark.timeout(600)  # its own waits (start 90 s, handovers 60 s) pass the default 120
def test_a_leader_paused_past_its_kubernetes_lease_applies_nothing_when_it_wakes(
    replicas: list[Replica], pg_url: str, apiserver: FakeApiServer, tmp_path: Path
) -> None:
    until(lambda: all(r.metric("jarvis_leader") is not None for r in replicas), START, "/metrics")
    first = until(lambda: the_leader(replicas), HANDOVER, "exactly one leader")
    assert isinstance(first, Replica)
    until(lambda: acted(pg_url, first.name), HANDOVER, f"{first.name} to act")
    [second] = [r for r in replicas if r is not first]
    assert apiserver.leases.get("default", "jarvis")["spec"]["holderIdentity"] == first.name

    os.kill(first.process.pid, signal.SIGSTOP)
    stopped_at = time.time()
    until(second.leads, HANDOVER, "the other to lead while the first is paused")
    until(lambda: acted(pg_url, second.name), HANDOVER, f"{second.name} to act")
    os.kill(first.process.pid, signal.SIGCONT)
    until(lambda: first.metric("jarvis_leader") == 0.0, HANDOVER, "the woken one to step down")
    ticks = second.metric("jarvis_ticks_total", outcome="ok") or 0.0
    until(
        lambda: (second.metric("jarvis_ticks_total", outcome="ok") or 0.0) >= ticks + 6,
        HANDOVER,
        "the leader to tick on",
    )
    assert second.leads() and first.metric("jarvis_leader") == 0.0

    # The Lease elected the second, and the row's epoch is the Lease's term.
    spec = apiserver.leases.get("default", "jarvis")["spec"]
    holder, epoch = anyio.run(row_of, pg_url)
    assert (spec["holderIdentity"], spec["leaseTransitions"]) == (second.name, epoch)
    assert holder == second.name

    events = started_by(pg_url)
    spans: dict[int, tuple[str, float, float]] = {}
    for e in events:
        term, replica, ts = int(e.payload["epoch"]), str(e.payload["replica"]), e.ts.timestamp()
        who, low, high = spans.get(term, (replica, ts, ts))
        assert who == replica, f"epoch {term} used by {who} and {replica}"
        spans[term] = (who, min(low, ts), max(high, ts))
    ordered = [spans[k] for k in sorted(spans)]
    for (_, _, end), (_, begin, _) in itertools.pairwise(ordered):
        assert end < begin, f"epochs overlap: {ordered}"
    late = [
        e for e in events if e.payload["replica"] == first.name and e.ts.timestamp() > stopped_at
    ]
    assert late == [], "the paused leader applied nothing after it woke"
    log = (tmp_path / f"{first.name}.log").read_text(encoding="utf-8")
    assert "stepped down" in log
