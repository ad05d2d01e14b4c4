"""SIGTERM while PostgreSQL is frozen, just after a provider call: the outcome is not lost.

The daemon acts on a local service whose start passes its health check only
when the test says so. The test waits for the intent to commit and the
service's process to start (the provider call is under way; the kill switch,
read again once the intent is durable, was read), freezes the database (a TCP
proxy that forwards nothing: a partition that drops packets), lets the start
succeed and asks the daemon to stop. The outcome cannot reach the
database in time; the spool is where an unreachable database's events go, so
it must be there (and replay into the database at the next start).
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
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
    """One local service, healthy only once ``go`` exists; Jarvis may restart it.

    Its process touches `started` (the provider call is under way) and sleeps.
    """
    sleeper = [
        sys.executable,
        "-c",
        "import pathlib, sys, time; pathlib.Path(sys.argv[2]).touch(); time.sleep(600)",
        str(lab.tmp_path),
        str(started(lab)),
    ]
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


def started(lab: Lab) -> Path:
    return lab.tmp_path / "started"


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


async def stop_after_a_frozen_call(
    lab: Lab, pg_url: str, pg_proxy: TcpProxy, *, kill_after: float
) -> tuple[int, Path, Path, dict[str, str]]:
    """Run the daemon to a restart whose intent committed and whose outcome meets a frozen
    database; SIGTERM it, SIGKILL it if it still runs ``kill_after`` seconds later.

    Returns its exit status, its log, the configuration and the environment.
    """
    await upgrade(pg_url)
    try:
        return await stop_after_a_stuck_call(
            lab, pg_proxy.url_for(pg_url), pg_url, pg_proxy.freeze, kill_after=kill_after
        )
    finally:
        pg_proxy.thaw()


async def stop_after_a_stuck_call(
    lab: Lab, url: str, read_url: str, stick: Callable[[], object], *, kill_after: float
) -> tuple[int, Path, Path, dict[str, str]]:
    """`stop_after_a_frozen_call` with the daemon on ``url``, the test reading ``read_url``
    and ``stick`` making the database stop taking writes once the intent is in."""
    go = lab.tmp_path / "go"
    config = write_config(lab, go)
    env = jarvis_env(lab.tmp_path, JARVIS_DATABASE_URL=url, JARVIS_HTTP__ENABLED="false")
    log = lab.tmp_path / "daemon.log"
    daemon = start(lab, config, env, log)
    try:

        async def intended() -> bool:
            return any(e.kind is EventKind.ACTION_STARTED for e in await recorded(read_url))

        async def called() -> bool:
            return '"action applied"' in log.read_text()

        async def calling() -> bool:
            return started(lab).exists()

        await wait_until(intended, "the intent", daemon)
        # Not before the call: the switch is read again once the intent is durable, and
        # read from a frozen database it withholds the action (fail-safe), which then
        # is never applied. Under load the intent was seen, and the database frozen,
        # before that read.
        await wait_until(calling, "the provider call to start", daemon)
        stick()
        go.touch()
        await wait_until(called, "the provider call", daemon)
        daemon.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            await anyio.to_thread.run_sync(lambda: daemon.wait(kill_after))
    finally:
        if daemon.poll() is None:
            daemon.kill()
        await anyio.to_thread.run_sync(daemon.wait)
    return daemon.returncode, log, config, env


def spooled_outcome(lab: Lab, action_id: str | None) -> bool:
    spool = lab.tmp_path / "spool.jsonl"
    lines = spool.read_text().splitlines() if spool.exists() else []
    return any('"action.applied"' in line and json.dumps(action_id) in line for line in lines)


@pytest.mark.timeout(400)  # two daemons, a frozen flush: a minute or two on a loaded machine
async def test_an_outcome_in_flight_when_sigterm_meets_a_frozen_database_is_spooled(
    lab: Lab, pg_url: str, pg_proxy: TcpProxy
) -> None:
    """The outcome of a provider call made before the stop survives the frozen database."""
    returncode, log, config, env = await stop_after_a_frozen_call(
        lab, pg_url, pg_proxy, kill_after=DEADLINE
    )
    assert returncode == 0, log.read_text()[-3000:]
    [intent] = [e for e in await recorded(pg_url) if e.kind is EventKind.ACTION_STARTED]
    assert spooled_outcome(lab, intent.action_id), (
        f"the outcome is neither stored nor spooled; daemon log ends:\n{log.read_text()[-3000:]}"
    )

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


@pytest.mark.timeout(400)
async def test_with_the_database_frozen_a_sigterm_exits_within_10_s_and_keeps_the_outcome(
    lab: Lab, pg_url: str, pg_proxy: TcpProxy
) -> None:
    """Within Cloud Run's 10 s from SIGTERM to SIGKILL (README: "exits 0 within 10 s"),
    the daemon exits 0 and the outcome of its last call is spooled."""
    returncode, log, _, _ = await stop_after_a_frozen_call(lab, pg_url, pg_proxy, kill_after=10)
    [intent] = [e for e in await recorded(pg_url) if e.kind is EventKind.ACTION_STARTED]
    assert returncode == 0, f"SIGKILLed after 10 s; log ends:\n{log.read_text()[-3000:]}"
    assert spooled_outcome(lab, intent.action_id)


@pytest.mark.timeout(400)
async def test_with_the_sqlite_file_locked_a_sigterm_exits_within_10_s_and_keeps_the_outcome(
    lab: Lab,
) -> None:
    """On SQLite, with another process holding the file's write lock when the outcome is
    to be written, the daemon still exits 0 within 10 s and the outcome is spooled."""
    url = f"sqlite+aiosqlite:///{lab.tmp_path}/jarvis.db"
    ready = lab.tmp_path / "locked"
    holder: list[subprocess.Popen[bytes]] = []

    def lock() -> None:
        # Holds the write lock until it is killed: every write of the daemon waits on it.
        writer = (
            "import sqlite3, sys, time, pathlib\n"
            "db = sqlite3.connect(sys.argv[1], timeout=60, isolation_level=None)\n"
            "db.execute('BEGIN IMMEDIATE')\n"
            "pathlib.Path(sys.argv[2]).touch()\n"
            "time.sleep(600)\n"
        )
        argv = [sys.executable, "-c", writer, str(lab.tmp_path / "jarvis.db"), str(ready)]
        holder.append(subprocess.Popen(argv))  # its tmp_path argument: the lab ends it
        while not ready.exists():
            assert holder[0].poll() is None, "the lock holder exited"
            time.sleep(0.05)

    try:
        returncode, log, _, _ = await stop_after_a_stuck_call(lab, url, url, lock, kill_after=10)
    finally:
        for process in holder:
            process.kill()
            process.wait()
    [intent] = [e for e in await recorded(url) if e.kind is EventKind.ACTION_STARTED]
    assert returncode == 0, f"SIGKILLed after 10 s; log ends:\n{log.read_text()[-3000:]}"
    assert spooled_outcome(lab, intent.action_id)
