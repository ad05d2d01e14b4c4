"""Three `jarvis run` processes on one PostgreSQL database: one leader, fenced handovers.

Real processes, a real database, short lease timings through the config, and
every wait an event with a generous deadline (a daemon can take 20 s to start
on a loaded machine). The record is the judge: every `action.started` names
the replica and epoch it was written under.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest

from jarvis.model import Event, EventKind
from jarvis.store import EventStore
from tests.cli.conftest import jarvis_argv, jarvis_env
from tests.conftest import migrated_pg_database
from tests.daemon import get, http_port, sample

LEASE = {
    "JARVIS_LEASE__DURATION": "4",
    "JARVIS_LEASE__RENEW_DEADLINE": "2.5",
    "JARVIS_LEASE__RETRY_PERIOD": "0.5",
}
START = 90.0
"""Seconds for three daemons to start on a loaded two-core machine."""
HANDOVER = 60.0


@dataclass
class Replica:
    name: str
    port: int
    process: subprocess.Popen[str]

    def metric(self, name: str, **labels: str) -> float | None:
        try:
            status, text = get(f"http://127.0.0.1:{self.port}/metrics")
        except OSError:
            return None
        return sample(text, name, **labels) if status == 200 else None

    def leads(self) -> bool:
        return self.metric("jarvis_leader") == 1.0


def until(check: Callable[[], object], seconds: float, what: str) -> object:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"waited {seconds:.0f} s for {what}")


migrated_database = migrated_pg_database
"""A brand-new migrated PostgreSQL database, dropped after (the HA tests' name for it)."""


@contextmanager
def running_replicas(
    tmp_path: Path, pg_url: str, names: Sequence[str], *, interval: str = "0.5", **env: str
) -> Iterator[list[Replica]]:
    """``jarvis run`` per name on ``pg_url``, logging to ``NAME.log``; stopped afterwards.

    Each binds a free HTTP port itself (`tests.daemon.http_port` reads which).
    ``env`` adds settings to every replica's environment. A replica a test paused
    is continued before it is asked to stop.
    """
    processes: dict[str, subprocess.Popen[str]] = {}
    for name in names:
        environment = jarvis_env(
            tmp_path,
            JARVIS_DATABASE_URL=pg_url,
            JARVIS_SPOOL_PATH=str(tmp_path / f"spool-{name}.jsonl"),
            JARVIS_HTTP__HOST="127.0.0.1",
            JARVIS_LEASE__REPLICA_ID=name,
            JARVIS_RETRY__MAX_ATTEMPTS="10",
            **LEASE,
            **env,
        )
        with (tmp_path / f"{name}.log").open("w") as log:
            processes[name] = subprocess.Popen(
                jarvis_argv("run", "--interval", interval, "--http-port", "0"),
                cwd=tmp_path,
                env=environment,
                stdout=log,
                stderr=subprocess.STDOUT,
                text=True,
            )
    try:
        deadline = time.monotonic() + START
        yield [
            Replica(name, http_port(tmp_path / f"{name}.log", deadline, process), process)
            for name, process in processes.items()
        ]
    finally:
        for process in processes.values():
            if process.poll() is None:
                os.kill(process.pid, signal.SIGCONT)
                process.terminate()
        for process in processes.values():
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def pg_url() -> Iterator[str]:
    with migrated_database() as url:
        yield url


@pytest.fixture
def replicas(tmp_path: Path, pg_url: str) -> Iterator[list[Replica]]:
    with running_replicas(tmp_path, pg_url, ["r0", "r1", "r2"]) as started:
        yield started


async def fetch_started(url: str) -> list[Event]:
    store = await EventStore.connect(url)
    try:
        return await store.events(limit=100_000, kinds=[EventKind.ACTION_STARTED.value])
    finally:
        await store.aclose()


def started_by(url: str) -> list[Event]:
    return anyio.run(fetch_started, url)


def acted(url: str, replica: str) -> bool:
    return any(e.payload.get("replica") == replica for e in started_by(url))


def the_leader(group: list[Replica]) -> Replica | None:
    """The one replica reporting jarvis_leader 1, once the others all report 0."""
    values = [r.metric("jarvis_leader") for r in group]
    if None in values or sum(v or 0 for v in values) != 1:
        return None
    return group[values.index(1.0)]


@pytest.mark.timeout(600)  # its own waits (start 90 s, handovers 60 s) pass the default 120
def test_one_leader_fenced_handovers_and_no_pair_acted_on_twice(
    replicas: list[Replica], pg_url: str, tmp_path: Path
) -> None:
    until(lambda: all(r.metric("jarvis_leader") is not None for r in replicas), START, "/metrics")
    first = until(lambda: the_leader(replicas), HANDOVER, "exactly one leader")
    assert isinstance(first, Replica)
    until(lambda: acted(pg_url, first.name), HANDOVER, f"{first.name} to act")
    for r in replicas:
        status, _ = get(f"http://127.0.0.1:{r.port}/healthz")
        assert status == 200, r.name  # followers are healthy too

    # SIGKILL the leader: another takes over and acts.
    first.process.kill()
    first.process.wait()
    rest = [r for r in replicas if r is not first]
    second = until(lambda: the_leader(rest), HANDOVER, "a new leader after SIGKILL")
    assert isinstance(second, Replica)
    until(lambda: acted(pg_url, second.name), HANDOVER, f"{second.name} to act")

    # SIGSTOP the leader past its lease; the third takes over; SIGCONT: it steps down.
    os.kill(second.process.pid, signal.SIGSTOP)
    stopped_at = time.time()
    [third] = [r for r in rest if r is not second]
    until(third.leads, HANDOVER, "the third to lead while the second is paused")
    until(lambda: acted(pg_url, third.name), HANDOVER, f"{third.name} to act")
    os.kill(second.process.pid, signal.SIGCONT)
    until(lambda: second.metric("jarvis_leader") == 0.0, HANDOVER, "the woken one to step down")
    stepped = second.metric("jarvis_leader_transitions_total", direction="stepped_down")
    assert stepped is not None and stepped >= 1
    assert third.leads()
    # Give the woken replica room to misbehave, judged by the third's progress.
    ticks = third.metric("jarvis_ticks_total", outcome="ok") or 0.0
    until(
        lambda: (third.metric("jarvis_ticks_total", outcome="ok") or 0.0) >= ticks + 6,
        HANDOVER,
        "the leader to tick on",
    )

    events = started_by(pg_url)
    stamped = [e for e in events if "epoch" in e.payload]
    assert len(stamped) == len(events), "every intent names its replica and epoch"
    # One replica per epoch, and epochs never overlap in time: nobody acted beside a leader.
    spans: dict[int, tuple[str, float, float]] = {}
    for e in events:
        epoch, replica, ts = int(e.payload["epoch"]), str(e.payload["replica"]), e.ts.timestamp()
        who, low, high = spans.get(epoch, (replica, ts, ts))
        assert who == replica, f"epoch {epoch} used by {who} and {replica}"
        spans[epoch] = (who, min(low, ts), max(high, ts))
    ordered = [spans[k] for k in sorted(spans)]
    for (_, _, end), (_, begin, _) in itertools.pairwise(ordered):
        assert end < begin, f"epochs overlap: {ordered}"
    late = [
        e for e in events if e.payload["replica"] == second.name and e.ts.timestamp() > stopped_at
    ]
    assert late == [], "the paused leader applied nothing after it woke"

    # `jarvis status --json` names the leader, its epoch and every replica's heartbeat.
    env = jarvis_env(tmp_path, JARVIS_DATABASE_URL=pg_url, **LEASE)
    done = subprocess.run(
        jarvis_argv("status", "--json"),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["leader"] == third.name
    assert report["epoch"] == max(spans)
    alive = {r["replica"]: r["alive"] for r in report["replicas"]}
    assert alive == {first.name: False, second.name: True, third.name: True}
