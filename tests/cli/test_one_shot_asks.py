"""A one-shot tick asks about earlier unknown outcomes: a cron of `jarvis tick` needs no daemon.

Against the fake Cloud Run Admin API, whose updates run until the test finishes
them: a `jarvis tick` restarts the crashed service ``api``, and the update
outlives ``cloudrun.operation_timeout``, so it is recorded ``action.unknown`` and
charged as a failed attempt. Once Cloud Run has finished it, the next `jarvis
tick` (holding the lease on PostgreSQL, the node lock on SQLite) reads the
unknown back and asks Cloud Run, as the daemon does at start: ``action.applied``
for the same action id, the failure taken back. A dry run and `jarvis plan` read
nothing back and ask nothing; beside a running daemon a one-shot refuses as
before, having asked nothing. Cloud Run is asked with one GET of the service,
as observe reads it, so a tick that asks reads it once more than observe alone.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest

from jarvis.loop import events as ev
from jarvis.loop.unknowns import QUESTIONS_AT_ONCE
from jarvis.model import Action, Event, EventKind, Outcome, ResourceRef, Restart, RetryState
from jarvis.store import EventStore
from jarvis.store.lease import PgLease
from jarvis.store.nodelock import NodeLock, sqlite_path
from tests.cli.conftest import Jarvis, jarvis_env
from tests.cloudrun.conftest import PROJECT, REGION, service_name
from tests.cloudrun.fake_server import FakeCloudRun

API = f"cloudrun://{PROJECT}/{REGION}/api"
SERVICE_PATH = f"/v2/{service_name('api')}"


def jarvis_config(tmp_path: Path, cloudrun: FakeCloudRun, **extra: str) -> Path:
    """Cloud Run's section aimed at the fake; ``extra`` lines go under ``[loop]`` and
    ``[cloudrun]`` as ``loop_*`` and ``cloudrun_*`` keywords."""
    loop = "".join(f"{k[5:]} = {v}\n" for k, v in extra.items() if k.startswith("loop_"))
    run = "".join(f"{k[9:]} = {v}\n" for k, v in extra.items() if k.startswith("cloudrun_"))
    config = tmp_path / "jarvis.toml"
    config.write_text(
        f"""
[[allowlist]]
provider = "cloudrun"
resources = "*"
actions = ["*"]

[loop]
{loop}
[breakers]
enabled = false

[cloudrun]
project = "{PROJECT}"
region = "{REGION}"
services = ["api"]
credentials = "anonymous"
api_endpoint = "{cloudrun.endpoint}"
operation_timeout = 0.3
poll_initial = 0.01
poll_maximum = 0.05
{run}""",
        encoding="utf-8",
    )
    return config


@pytest.fixture
def env(tmp_path: Path, cloudrun: FakeCloudRun, database_url: str) -> dict[str, str]:
    config = jarvis_config(tmp_path, cloudrun, cloudrun_request_timeout="5")
    return jarvis_env(tmp_path, JARVIS_CONFIG=str(config), JARVIS_DATABASE_URL=database_url)


def recorded(url: str, kind: EventKind) -> list[Event]:
    """The events of ``kind`` in the database at ``url``, as another process reads them."""

    async def read() -> list[Event]:
        store = await EventStore.connect(url)
        try:
            return await store.events(kinds=[kind.value], limit=1000)
        finally:
            await store.aclose()

    return anyio.run(read)


def failures(url: str) -> int:
    """The consecutive failures on the ledger's one row (api, restart)."""

    async def read() -> dict[tuple[str, str], RetryState]:
        store = await EventStore.connect(url)
        try:
            return await store.load_retries()
        finally:
            await store.aclose()

    [(key, row)] = anyio.run(read).items()
    assert key == (API, "restart")
    return row.consecutive_failures


def service_reads(cloudrun: FakeCloudRun) -> int:
    """GETs of ``api`` so far: one per observe, and one per question about an unknown."""
    with cloudrun.lock:
        return sum(1 for r in cloudrun.requests if r.method == "GET" and r.path == SERVICE_PATH)


def unknown_tick(jarvis: Jarvis, env: dict[str, str], cloudrun: FakeCloudRun) -> str:
    """A `jarvis tick` whose restart of ``api`` (crash-looping: heal restarts it) ends
    unknown; Cloud Run then finishes it. Its action id."""
    cloudrun.state.crash(service_name("api"))
    first = jarvis("tick", "--json", env=env, timeout=120)
    assert first.returncode == 0, first.stderr
    [unknown] = json.loads(first.stdout)["unknown_outcomes"]
    assert unknown["resource"] == API
    assert "next tick that acts on this database" in unknown["resolution"]
    assert failures(env["JARVIS_DATABASE_URL"]) == 1
    cloudrun.state.finish_operations()
    return str(unknown["action_id"])


def test_the_next_one_shot_tick_confirms_an_earlier_ticks_unknown_outcome(
    jarvis: Jarvis, env: dict[str, str], cloudrun: FakeCloudRun, database_url: str
) -> None:
    """With no daemon, the second `jarvis tick` asks Cloud Run about the first's unknown
    restart and records ``action.applied`` for its action id; the failure is taken back."""
    action_id = unknown_tick(jarvis, env, cloudrun)

    second = jarvis("tick", env=env, timeout=120)
    assert second.returncode == 0, second.stderr
    applied = recorded(database_url, EventKind.ACTION_APPLIED)
    assert [(e.action_id, e.payload.get("confirmed")) for e in applied] == [(action_id, True)]
    assert failures(database_url) == 0


def test_a_dry_run_tick_and_plan_ask_nothing_and_write_nothing(
    jarvis: Jarvis, env: dict[str, str], cloudrun: FakeCloudRun, database_url: str
) -> None:
    """`jarvis tick --dry-run` and `jarvis plan` read ``api`` only to observe it, record no
    confirmation and leave the ledger charged (plan records no tick either); the next
    real tick asks and confirms."""
    action_id = unknown_tick(jarvis, env, cloudrun)
    for command, ticks in ((("tick", "--dry-run"), 1), (("plan",), 0)):
        reads = service_reads(cloudrun)
        started = len(recorded(database_url, EventKind.TICK_STARTED))
        done = jarvis(*command, env=env, timeout=120)
        assert done.returncode == 0, done.stderr
        assert service_reads(cloudrun) == reads + 1, command  # observe's read alone
        assert recorded(database_url, EventKind.ACTION_APPLIED) == []
        assert failures(database_url) == 1
        assert len(recorded(database_url, EventKind.TICK_STARTED)) == started + ticks

    reads = service_reads(cloudrun)
    done = jarvis("tick", env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert service_reads(cloudrun) == reads + 2  # the question, then observe
    applied = recorded(database_url, EventKind.ACTION_APPLIED)
    assert [e.action_id for e in applied] == [action_id]


def test_a_one_shot_beside_a_running_daemon_refuses_and_asks_nothing(
    jarvis: Jarvis, env: dict[str, str], cloudrun: FakeCloudRun, database_url: str
) -> None:
    """Beside the daemon's node lock (SQLite) or a replica's lease (PostgreSQL), `jarvis
    tick` exits 2 naming it as before: Cloud Run hears nothing, nothing is confirmed."""
    unknown_tick(jarvis, env, cloudrun)
    requests = len(cloudrun.requests)
    path = sqlite_path(database_url)
    lock = None
    if path is not None:
        lock = NodeLock(path)
        lock.acquire()
    else:
        anyio.run(lead, database_url)
    try:
        done = jarvis("tick", env=env, timeout=120)
    finally:
        if lock is not None:
            lock.release()
    assert done.returncode == 2, done.stdout + done.stderr
    [line] = done.stderr.strip().splitlines()
    assert "would act beside it" in line
    assert len(cloudrun.requests) == requests
    assert recorded(database_url, EventKind.ACTION_APPLIED) == []
    assert failures(database_url) == 1


async def lead(url: str) -> None:
    """A replica takes the lease, as `jarvis run` on PostgreSQL does."""
    store = await EventStore.connect(url)
    try:
        assert await PgLease(store.engine, "r0", duration=600).acquire() is not None
    finally:
        await store.aclose()


UNKNOWNS = 3 * QUESTIONS_AT_ONCE


async def seed_unknowns(url: str, count: int = UNKNOWNS) -> list[str]:
    """``count`` restarts of ``api`` by earlier one-shot ticks, each ended unknown, a
    minute apart up to a minute ago, oldest first."""
    store = await EventStore.connect(url, auto_migrate=True)
    action = Action(ResourceRef.parse(API), Restart(), "heal", "unhealthy")
    now = datetime.now(UTC)
    ids = []
    try:
        for minutes in range(count, 0, -1):
            ts = now - timedelta(minutes=minutes)
            tick_id = ev.tick_id_for(ts, "cron")
            action_id = ev.action_id_for(tick_id, action)
            timed_out = Outcome.timed_out("apply did not finish within 1s")
            store.append(
                [
                    ev.started(tick_id, ts, action, action_id),
                    ev.outcome_event(tick_id, ts, action, action_id, timed_out),
                ]
            )
            ids.append(action_id)
        await store.flush()
    finally:
        await store.aclose()
    return ids


def test_a_tick_with_many_unknowns_and_a_hanging_provider_asks_within_its_bounds(
    jarvis: Jarvis, tmp_path: Path, cloudrun: FakeCloudRun, database_url: str
) -> None:
    """With 24 unknowns open and Cloud Run accepting requests it never answers, a one-shot
    tick sends 8 questions at once while it observes, starts none after the observe
    timeout and cuts those in flight then: 8 reach Cloud Run, and observe's read; the
    tick is recorded finished, nothing is confirmed, and it exits 1 naming Cloud Run. The
    next tick, Cloud Run answering again, asks about all 24."""
    ids = anyio.run(seed_unknowns, database_url)
    # Threads enough for every question (the default 4 would queue half of them), and
    # a request timeout past the apply timeout: no hung read is cut and sent again.
    config = jarvis_config(
        tmp_path,
        cloudrun,
        loop_apply_timeout="1",
        loop_observe_timeout="1",
        cloudrun_request_timeout="3",
        cloudrun_max_concurrency="32",
    )
    env = jarvis_env(tmp_path, JARVIS_CONFIG=str(config), JARVIS_DATABASE_URL=database_url)
    cloudrun.hang(path_contains=SERVICE_PATH)

    done = jarvis("tick", "--json", env=env, timeout=120)
    # Cloud Run did not answer observe in time: the tick says so and exits 1.
    assert done.returncode == 1, done.stderr
    assert "no answer: cloudrun did not answer within loop.observe_timeout" in done.stderr
    report = json.loads(done.stdout)
    assert service_reads(cloudrun) == QUESTIONS_AT_ONCE + 1
    assert list(report["observe_errors"]) == ["cloudrun"]
    finished = recorded(database_url, EventKind.TICK_FINISHED)
    assert [e.tick_id for e in finished] == [report["tick_id"]]
    assert recorded(database_url, EventKind.ACTION_APPLIED) == []

    cloudrun.heal()
    jarvis_config(tmp_path, cloudrun, cloudrun_request_timeout="5")  # the apply timeout's 20 s
    reads = service_reads(cloudrun)
    again = jarvis("tick", env=env, timeout=120)
    assert again.returncode == 0, again.stderr
    assert service_reads(cloudrun) == reads + len(ids) + 1  # every one asked, then observe
    assert recorded(database_url, EventKind.ACTION_APPLIED) == []
