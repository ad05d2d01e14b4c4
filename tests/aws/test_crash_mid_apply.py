"""SIGKILL the real daemon in the middle of ECS applies, again and again, and read the record.

`jarvis run` restarts an unhealthy ECS service in moto through a forwarder
(`tests.aws.holding_proxy`) that holds one AWS call: the crash point is found
from outside the process. Each run is SIGKILLed while a call is held:

1. the idempotency check held before the change (the intent durable, nothing
   changed; first, as each later start makes the same call to recover);
2. UpdateService held after moto applied it (the change made, its tag and
   outcome not written);
3. TagResource held after moto applied it (change and key recorded at the
   provider, the outcome not written).

The next start asks ECS about each orphan: the first two are unknown (a
failed attempt each), the third carries its key, so it was applied. A fourth
run must find the budget spent by the three attempts, the service still
unhealthy, and escalate rather than restart a fourth time. Checked
from both sides: moto's own log of calls, and the event store. Beside it: an
outcome spooled while PostgreSQL was away outlives a SIGKILL, and a change
whose answer outlasts the read timeout is not sent a second time.
"""

from __future__ import annotations

import json
import signal
import subprocess
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import pytest

from jarvis.model import Event, EventKind
from jarvis.store import EventStore, upgrade
from tests.aws.conftest import create_fleet
from tests.aws.holding_proxy import HoldingProxy, holding_proxy
from tests.cli.conftest import jarvis_argv, jarvis_env
from tests.store.tcp_proxy import TcpProxy

if TYPE_CHECKING:
    from mypy_boto3_ecs import ECSClient

pytestmark = pytest.mark.anyio

#: A daemon can take 20 s to start on a loaded machine; an apply waits for ticks.
DEADLINE = 120.0
TARGET = ("ecs://prod/svc-0", "restart")
OUTCOMES = {EventKind.ACTION_APPLIED, EventKind.ACTION_FAILED, EventKind.ACTION_UNKNOWN}


Start = Callable[[dict[str, str], str], subprocess.Popen[bytes]]


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Start]:
    """Starts `jarvis run` in tmp_path (output in NAME.log); kills what is left at the end."""
    started: list[subprocess.Popen[bytes]] = []

    def run(env: dict[str, str], name: str) -> subprocess.Popen[bytes]:
        with (tmp_path / f"{name}.log").open("wb") as log:
            process = subprocess.Popen(
                jarvis_argv("run", "--interval", "0.5", "--http-port", "0"),
                cwd=tmp_path,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        started.append(process)
        return process

    yield run
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)


def daemon_env(tmp_path: Path, aws_url: str, database: dict[str, str]) -> dict[str, str]:
    """One restartable service in moto's prod cluster, reached at ``aws_url``."""
    return jarvis_env(
        tmp_path,
        JARVIS_AWS=json.dumps({"endpoint_url": aws_url, "clusters": ["prod"], "metrics": False}),
        JARVIS_ALLOWLIST=json.dumps(
            [{"provider": "ecs", "resources": "prod/*", "actions": ["restart"]}]
        ),
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        **database,
    )


def tail(log: Path) -> str:
    """The end of a daemon's output, for a failure message."""
    return log.read_text(errors="replace")[-3000:]


async def until_held(proxy: HoldingProxy, process: subprocess.Popen[bytes], log: Path) -> None:
    """Once the proxy holds a call of ``process``; fails if it never makes one."""
    with anyio.fail_after(DEADLINE):
        while not proxy.held.is_set():
            assert process.poll() is None, f"the daemon exited:\n{tail(log)}"
            await anyio.sleep(0.1)


def kill(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=60) == -signal.SIGKILL


async def crash_when_held(proxy: HoldingProxy, process: subprocess.Popen[bytes], log: Path) -> None:
    """SIGKILL ``process`` once the proxy holds its call; fails if it never makes one."""
    await until_held(proxy, process, log)
    kill(process)
    proxy.release()


async def events(url: str) -> list[Event]:
    store = await EventStore.connect(url)
    try:
        return list(await store.events_by_time())
    finally:
        await store.aclose()


def of_target(found: list[Event], kind: EventKind) -> list[Event]:
    return [e for e in found if e.kind is kind and (e.resource, e.action_kind) == TARGET]


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """The daemon's database settings: SQLite alone, or PostgreSQL (migrated by the
    test) under a short lease."""
    if request.param == "sqlite":
        return {"JARVIS_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/jarvis.db"}
    url: str = request.getfixturevalue("pg_url")
    # A SIGKILLed leader's lease must lapse before the next run leads: keep it short.
    lease = {"duration": 4.0, "renew_deadline": 3.0, "retry_period": 0.5}
    return {"JARVIS_DATABASE_URL": url, "JARVIS_LEASE": json.dumps(lease)}


@pytest.mark.timeout(600)  # four daemons, each up to 20 s to start on a loaded machine
async def test_sigkills_mid_apply_neither_repeat_nor_lose_an_action(
    tmp_path: Path,
    moto: str,
    ecs_client: ECSClient,
    monkeypatch: pytest.MonkeyPatch,
    database: dict[str, str],
    start: Start,
) -> None:
    """Across three SIGKILLs mid-apply, every intent is closed once, the record matches
    moto's calls (the change whose key ECS holds is applied, the others unknown), and the
    three attempts spend the budget (no fourth restart)."""
    monkeypatch.setenv("MOTO_ECS_SERVICE_RUNNING", "0")  # never healthy: heal keeps trying
    create_fleet(ecs_client, per_cluster=1)
    url = database["JARVIS_DATABASE_URL"]
    if url.startswith("postgresql"):
        await upgrade(url)
    with holding_proxy(moto) as proxy:
        env = daemon_env(tmp_path, proxy.url, database)
        # Observe describes services without tags; the apply's key check, made
        # once the intent is durable, asks for them.
        # Each later start asks the same about its orphan, so this one comes first.
        points = [
            ("DescribeServices", False, b'"TAGS"'),
            ("UpdateService", True, b""),
            ("TagResource", True, b""),
        ]
        for index, (operation, after_moto, containing) in enumerate(points):
            proxy.hold(operation, after_moto=after_moto, containing=containing)
            name = f"run{index}"
            await crash_when_held(proxy, start(env, name), tmp_path / f"{name}.log")

        last = start(env, "last")
        with anyio.fail_after(DEADLINE):
            while not of_target(await events(url), EventKind.ACTION_ESCALATED):
                assert last.poll() is None, tail(tmp_path / "last.log")
                await anyio.sleep(0.3)
        # A few more ticks, in which a forgotten budget would restart again.
        await anyio.sleep(3)
        last.terminate()
        assert last.wait(timeout=60) == 0

    found = await events(url)
    log = (tmp_path / "last.log").read_text()
    started = of_target(found, EventKind.ACTION_STARTED)
    closed = Counter(e.action_id for e in found if e.kind in OUTCOMES)
    assert [closed[e.action_id] for e in started] == [1] * len(started), log
    assert [e.kind for e in found if e.kind in OUTCOMES and e.resource == TARGET[0]] == [
        EventKind.ACTION_UNKNOWN,
        EventKind.ACTION_UNKNOWN,
        EventKind.ACTION_APPLIED,
    ], log
    # moto's side: one forced deployment per intent that reached it, none after.
    assert proxy.forwarded("UpdateService") == 2, proxy.log
    assert proxy.forwarded("TagResource") == 1, proxy.log
    store = await EventStore.connect(url)
    try:
        ledger = (await store.load_retries())[TARGET]
    finally:
        await store.aclose()
    assert ledger.consecutive_failures == 0  # the last attempt was applied
    assert ledger.quarantined
    assert len(ledger.attempts) == 3


@pytest.mark.timeout(600)
async def test_an_outcome_spooled_while_postgresql_was_away_survives_a_sigkill(
    tmp_path: Path,
    moto: str,
    ecs_client: ECSClient,
    monkeypatch: pytest.MonkeyPatch,
    pg_url: str,
    pg_proxy: TcpProxy,
    start: Start,
) -> None:
    """The database goes away after moto applied a restart; the daemon is SIGKILLed once
    it spooled the outcome; the next run records the restart as applied, once, and
    charges no failure for it."""
    monkeypatch.setenv("MOTO_ECS_SERVICE_RUNNING", "0")
    create_fleet(ecs_client, per_cluster=1)
    await upgrade(pg_url)
    lease = {"duration": 4.0, "renew_deadline": 3.0, "retry_period": 0.5}
    database = {
        "JARVIS_DATABASE_URL": pg_proxy.url_for(pg_url),
        "JARVIS_LEASE": json.dumps(lease),
    }
    spool = tmp_path / "spool.jsonl"
    with holding_proxy(moto) as proxy:
        env = daemon_env(tmp_path, proxy.url, database)
        proxy.hold("TagResource", after_moto=True)
        first = start(env, "first")
        await until_held(proxy, first, tmp_path / "first.log")
        await pg_proxy.stop()
        proxy.release()
        with anyio.fail_after(DEADLINE):
            while '"kind":"action.applied"' not in (spool.read_text() if spool.exists() else ""):
                assert first.poll() is None, tail(tmp_path / "first.log")
                await anyio.sleep(0.1)
        kill(first)
        await pg_proxy.start()
        # Nothing more to restart: the next run only replays and recovers.
        monkeypatch.setenv("MOTO_ECS_SERVICE_RUNNING", "2")
        ecs_client.update_service(cluster="prod", service="svc-0", desiredCount=2)
        second = start(env, "second")
        restarted = datetime.now(UTC)
        with anyio.fail_after(DEADLINE):
            while not [
                e
                for e in await events(pg_url)
                if e.kind is EventKind.TICK_FINISHED and e.ts > restarted
            ]:
                assert second.poll() is None, tail(tmp_path / "second.log")
                await anyio.sleep(0.3)
        second.terminate()
        assert second.wait(timeout=60) == 0

    found = await events(pg_url)
    log = (tmp_path / "second.log").read_text()
    started = of_target(found, EventKind.ACTION_STARTED)
    assert len(started) == 1, log
    assert [e.kind for e in found if e.kind in OUTCOMES] == [EventKind.ACTION_APPLIED], log
    assert proxy.forwarded("UpdateService") == 1, proxy.log
    store = await EventStore.connect(pg_url)
    try:
        ledger = (await store.load_retries())[TARGET]
    finally:
        await store.aclose()
    assert ledger.consecutive_failures == 0, ledger


async def test_a_restart_whose_answer_times_out_is_not_sent_again(
    tmp_path: Path,
    moto: str,
    ecs_client: ECSClient,
    monkeypatch: pytest.MonkeyPatch,
    start: Start,
) -> None:
    """ECS forces the deployment but its answer outlasts the read timeout: the change
    is sent once for its key (botocore's retry forced a second deployment), and the
    record calls it neither applied nor failed: unknown."""
    monkeypatch.setenv("MOTO_ECS_SERVICE_RUNNING", "0")
    create_fleet(ecs_client, per_cluster=1)
    url = f"sqlite+aiosqlite:///{tmp_path}/jarvis.db"
    with holding_proxy(moto) as proxy:
        env = daemon_env(tmp_path, proxy.url, {"JARVIS_DATABASE_URL": url})
        aws = {"endpoint_url": proxy.url, "clusters": ["prod"], "metrics": False}
        env["JARVIS_AWS"] = json.dumps(aws | {"read_timeout": 1})
        proxy.hold("UpdateService", after_moto=True)
        daemon = start(env, "daemon")
        await until_held(proxy, daemon, tmp_path / "daemon.log")
        with anyio.fail_after(DEADLINE):
            while not [e for e in await events(url) if e.kind in OUTCOMES]:
                assert daemon.poll() is None, tail(tmp_path / "daemon.log")
                await anyio.sleep(0.2)
        daemon.terminate()
        assert daemon.wait(timeout=60) == 0
        proxy.release()

    found = await events(url)
    started = of_target(found, EventKind.ACTION_STARTED)
    first = started[0].action_id
    outcome = next(e for e in found if e.kind in OUTCOMES and e.action_id == first)
    # Every intent precedes its call: more calls than intents is a key sent twice.
    assert proxy.forwarded("UpdateService") <= len(started), proxy.log
    assert outcome.kind is EventKind.ACTION_UNKNOWN, outcome
    assert outcome.payload["outcome"] == "timed_out", outcome
    assert outcome.payload["error_code"] == "Timeout", outcome
