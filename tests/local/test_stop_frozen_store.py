"""SIGTERM while PostgreSQL is frozen, just after a provider call: the outcome is not lost.

The daemon acts on a local service whose start passes its health check only
when the test says so. The test lets the intent commit, freezes the database
(a TCP proxy that forwards nothing: a partition that drops packets), lets the
start succeed and asks the daemon to stop. The outcome cannot reach the
database in time; the spool is where an unreachable database's events go, so
it must be there (and replay into the database at the next start).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from jarvis.model import Event, EventKind
from jarvis.store import EventStore, upgrade
from tests.cli.conftest import jarvis_argv, jarvis_env
from tests.cli.test_crash_during_outage import wait_until
from tests.local.conftest import Lab
from tests.store.tcp_proxy import TcpProxy

pytestmark = pytest.mark.anyio

DEADLINE = 120.0
SERVICE = "local://slow"


def write_config(lab: Lab, go: Path) -> Path:
    """One local service, healthy only once ``go`` exists; Jarvis may restart it."""
    sleeper = [sys.executable, "-c", "import time; time.sleep(600)", str(lab.tmp_path)]
    check = [
        sys.executable,
        "-c",
        "import os, sys; sys.exit(0 if os.path.exists(sys.argv[1]) else 1)",
        str(go),
    ]
    path = lab.tmp_path / "jarvis.toml"
    path.write_text(
        f"""
[[allowlist]]
provider = "local"
resources = "*"
actions = ["restart"]

[loop]
apply_timeout = 60

[local]
state_directory = {json.dumps(str(lab.state))}

[[local.services]]
name = "slow"
command = {json.dumps(sleeper)}
health_command = {json.dumps(check)}
start_timeout = 45
"""
    )
    return path


def start(lab: Lab, config: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            jarvis_argv("run", "--config", str(config), "--interval", "1"),
            cwd=lab.tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def recorded(url: str) -> list[Event]:
    store = await EventStore.connect(url)
    try:
        return await store.events(limit=100_000, resource=SERVICE)
    finally:
        await store.aclose()


async def ticks(url: str) -> list[Event]:
    """The ``tick.finished`` events of runs elected after the first one's lease."""
    store = await EventStore.connect(url)
    try:
        found = await store.events(limit=100_000, kinds=[EventKind.TICK_FINISHED.value])
    finally:
        await store.aclose()
    return [e for e in found if int(str(e.payload.get("epoch", 0))) >= 2]


@pytest.mark.timeout(400)  # two daemons, a frozen flush: a minute or two on a loaded machine
async def test_an_outcome_in_flight_when_sigterm_meets_a_frozen_database_is_spooled(
    lab: Lab, pg_url: str, pg_proxy: TcpProxy
) -> None:
    """The outcome of a provider call made before the stop survives the frozen database."""
    await upgrade(pg_url)
    go = lab.tmp_path / "go"
    config = write_config(lab, go)
    env = jarvis_env(
        lab.tmp_path, JARVIS_DATABASE_URL=pg_proxy.url_for(pg_url), JARVIS_HTTP__ENABLED="false"
    )
    log = lab.tmp_path / "daemon.log"
    daemon = start(lab, config, env, log)
    try:

        async def intended() -> bool:
            return any(e.kind is EventKind.ACTION_STARTED for e in await recorded(pg_url))

        async def called() -> bool:
            return '"action applied"' in log.read_text()

        await wait_until(intended, "the intent", daemon)
        pg_proxy.freeze()
        go.touch()
        await wait_until(called, "the provider call", daemon)
        daemon.send_signal(signal.SIGTERM)
        returncode = await anyio.to_thread.run_sync(lambda: daemon.wait(DEADLINE))
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
        pg_proxy.thaw()
    assert returncode == 0, log.read_text()[-3000:]
    [intent] = [e for e in await recorded(pg_url) if e.kind is EventKind.ACTION_STARTED]
    spool = lab.tmp_path / "spool.jsonl"
    lines = spool.read_text().splitlines() if spool.exists() else []
    assert any(
        '"action.applied"' in line and json.dumps(intent.action_id) in line for line in lines
    ), f"the outcome is neither stored nor spooled; daemon log ends:\n{log.read_text()[-3000:]}"

    # The next daemon replays it: the record says applied, never "outcome unknown".
    again = lab.tmp_path / "again.log"
    daemon = start(lab, config, {**env, "JARVIS_DATABASE_URL": pg_url}, again)
    try:

        async def ticked() -> bool:
            # Elected once the stopped run's lease expired: orphans are closed then.
            return bool(await ticks(pg_url))

        await wait_until(ticked, "a tick of the next leader", daemon)
        daemon.send_signal(signal.SIGTERM)
        assert await anyio.to_thread.run_sync(lambda: daemon.wait(DEADLINE)) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
    closed = [e.kind for e in await recorded(pg_url) if e.action_id == intent.action_id]
    assert closed == [EventKind.ACTION_STARTED, EventKind.ACTION_APPLIED], closed
