"""The retry limit holds across a SIGKILL during a database outage.

Before, ledger updates made while PostgreSQL was away lived only in memory:
the daemon's attempts were spooled as events, but a restart loaded the
ledger from the database (without them) and tried again, so a service that
never recovers got six restarts in a minute instead of three.

On PostgreSQL the daemon is a replica under a lease, and every intent is
written under the leader's fence, in the database's own transaction: with the
database gone no intent can be, so nothing is applied during the outage (the
leader steps down) and no attempt exists that a restart could forget. (On
SQLite, with no fence, the spool journals intents and ledger rows instead and
replays them first at start: `tests/store/test_spool_journal.py` and
`tests/loop/test_store_outage.py`.)

The real daemon runs twice on a simulated fleet (one service never recovers)
with its kill switch in Redis, so it could act while the database is gone: a
TCP proxy in front of PostgreSQL is the database going away.
"""

from __future__ import annotations

import subprocess
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest

from jarvis.model import EventKind
from jarvis.store import EventStore, upgrade
from tests.cli.conftest import jarvis_argv, jarvis_env, set_switch
from tests.store.tcp_proxy import TcpProxy

pytestmark = pytest.mark.anyio

DEADLINE = 120.0
NEVER_RECOVERS = "sim://ai-dawg-ai-brain"


@pytest.fixture
async def proxy(pg_url: str, pg_proxy: TcpProxy) -> TcpProxy:
    """``pg_proxy`` in front of a database migrated to head."""
    await upgrade(pg_url)
    return pg_proxy


def daemon(tmp_path: Path, env: dict[str, str], name: str) -> subprocess.Popen[bytes]:
    with (tmp_path / f"{name}.log").open("wb") as log:
        return subprocess.Popen(
            jarvis_argv("run", "--interval", "0.3", "--http-port", "0"),
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


async def events_of(
    url: str, kind: EventKind, since: datetime | None = None
) -> list[tuple[str, str]]:
    """(resource, action kind) of every ``kind`` event stored at or after ``since``."""
    store = await EventStore.connect(url)
    try:
        found = await store.events_by_time(kinds=[kind.value], since=since)
    finally:
        await store.aclose()
    return [(e.resource or "", e.action_kind or "") for e in found]


async def wait_until(check: object, what: str, process: subprocess.Popen[bytes]) -> None:
    assert callable(check)
    with anyio.fail_after(DEADLINE):
        while not await check():
            assert process.poll() is None, f"the daemon exited ({process.returncode}) before {what}"
            await anyio.sleep(0.2)


@pytest.mark.timeout(300)  # two daemons, a lease to lose, 15 ticks: 50 s on a loaded machine
async def test_a_sigkill_during_an_outage_does_not_reset_the_retry_limit(
    tmp_path: Path, pg_url: str, proxy: TcpProxy, redis_url: str
) -> None:
    """No (resource, kind) gets more attempts than the limit across a crash mid-outage."""
    spool = tmp_path / "spool.jsonl"
    env = jarvis_env(
        tmp_path, JARVIS_DATABASE_URL=proxy.url_for(pg_url), JARVIS_REDIS_URL=redis_url
    )
    # Engaged until the database is gone, so every attempt happens during the outage.
    await set_switch(redis_url, engaged=True)
    first = daemon(tmp_path, env, "first")
    try:

        async def ticking() -> bool:
            return bool(await events_of(pg_url, EventKind.TICK_FINISHED))

        await wait_until(ticking, "its first tick", first)
        await proxy.stop()
        await set_switch(redis_url, engaged=False)

        log = tmp_path / "first.log"

        async def stood_down() -> bool:
            # Its next intent cannot be fenced without the database: it stops acting.
            return "lease lost" in log.read_text(encoding="utf-8", errors="replace")

        await wait_until(stood_down, "its fenced intent failed", first)
        first.kill()
        first.wait(timeout=30)
        text = spool.read_text(encoding="utf-8") if spool.exists() else ""
        assert '"kind":"action.started"' not in text, "an intent was journaled without its fence"
    finally:
        if first.poll() is None:
            first.kill()
            first.wait(timeout=30)

    await proxy.start()
    restarted = datetime.now(UTC)
    second = daemon(tmp_path, env, "second")
    try:

        async def long_enough() -> bool:
            # The simulated service crashes again at the new run's third tick; a
            # budget forgotten would be spent again within about ten ticks.
            ticks = await events_of(pg_url, EventKind.TICK_FINISHED, since=restarted)
            return len(ticks) >= 15

        await wait_until(long_enough, "fifteen ticks", second)
        second.terminate()
        assert second.wait(timeout=60) == 0
    finally:
        if second.poll() is None:
            second.kill()
            second.wait(timeout=30)

    started = Counter(await events_of(pg_url, EventKind.ACTION_STARTED))
    assert started[(NEVER_RECOVERS, "restart")] == 3, (tmp_path / "second.log").read_text()
    assert max(started.values()) <= 3
