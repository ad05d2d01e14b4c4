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
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from jarvis.store import EventStore
from jarvis.store.lease import lease_status
from tests.cli.conftest import jarvis_argv, jarvis_env
from tests.cli.test_daemon import free_port
from tests.conftest import create_pg_database, drop_pg_database
from tests.ha.test_replicas import (
    HANDOVER,
    LEASE,
    START,
    Replica,
    acted,
    migrate,
    started_by,
    the_leader,
    until,
)
from tests.kubernetes.fake_apiserver import FakeApiServer

TOKEN = "lease-test-token"


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A brand-new migrated PostgreSQL database (sync: the test drives processes)."""
    url = anyio.run(create_pg_database)
    try:
        anyio.run(migrate, url)
        yield url
    finally:
        anyio.run(drop_pg_database, url)


@pytest.fixture
def apiserver() -> Iterator[FakeApiServer]:
    with FakeApiServer(token=TOKEN) as server:
        yield server


@pytest.fixture
def replicas(tmp_path: Path, pg_url: str, apiserver: FakeApiServer) -> Iterator[list[Replica]]:
    started: list[Replica] = []
    for name in ("k0", "k1"):
        port = free_port()
        env = jarvis_env(
            tmp_path,
            JARVIS_DATABASE_URL=pg_url,
            JARVIS_SPOOL_PATH=str(tmp_path / f"spool-{name}.jsonl"),
            JARVIS_HTTP__HOST="127.0.0.1",
            JARVIS_LEASE__REPLICA_ID=name,
            JARVIS_LEASE__BACKEND="kubernetes",
            JARVIS_KUBERNETES__HOST=apiserver.url,
            JARVIS_KUBERNETES__TOKEN=TOKEN,
            JARVIS_SIMULATED__ENABLED="true",
            JARVIS_RETRY__MAX_ATTEMPTS="10",
            **LEASE,
        )
        with (tmp_path / f"{name}.log").open("w") as log:
            process = subprocess.Popen(
                jarvis_argv("run", "--interval", "0.5", "--http-port", str(port)),
                cwd=tmp_path,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                text=True,
            )
        started.append(Replica(name, port, process))
    try:
        yield started
    finally:
        for r in started:
            if r.process.poll() is None:
                os.kill(r.process.pid, signal.SIGCONT)
                r.process.terminate()
        for r in started:
            try:
                r.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                r.process.kill()
                r.process.wait()


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
