"""`jarvis run` on PostgreSQL tells on-call the truth of an outage of its database.

A real daemon (one replica, a spool, the kill switch in Redis so it could act
without the database) on a simulated fleet; a TCP proxy in front of PostgreSQL
is the database going away. Without the database its lease cannot be renewed,
so it applies nothing: the channels are paged (not warned) that no replica
acts, and the resolve says nothing was acted on meanwhile; the record agrees.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest

from jarvis.model import EventKind
from jarvis.store import EventStore, upgrade
from tests.cli.conftest import set_switch
from tests.notify.receivers import Receivers
from tests.notify.test_daemon import daemon_env, start, stop
from tests.store.tcp_proxy import TcpProxy

pytestmark = pytest.mark.anyio

DEADLINE = 120.0


async def until(done: Callable[[], object], what: str) -> None:
    """Poll ``done``: the receivers run on a thread of their own."""
    try:
        with anyio.fail_after(DEADLINE):
            for _ in itertools.count():
                if done():
                    return
                await anyio.sleep(0.2)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


async def stored(url: str, kind: EventKind, since: datetime | None = None) -> int:
    store = await EventStore.connect(url)
    try:
        return len(await store.events_by_time(kinds=[kind.value], since=since))
    finally:
        await store.aclose()


@pytest.mark.timeout(300)
async def test_a_postgresql_outage_pages_that_no_replica_acts_and_the_resolve_says_so(
    tmp_path: Path, receivers: Receivers, pg_url: str, pg_proxy: TcpProxy, redis_url: str
) -> None:
    """The daemon's page is critical and says no replica acts; the resolve, that none did."""
    await upgrade(pg_url)
    await set_switch(redis_url, engaged=False)
    env = daemon_env(tmp_path, receivers)
    env.update(
        JARVIS_DATABASE_URL=pg_proxy.url_for(pg_url),
        JARVIS_REDIS_URL=redis_url,
        JARVIS_NOTIFY__STORE_UNREACHABLE_AFTER="2",
    )
    daemon = start(tmp_path, env)
    try:
        with anyio.fail_after(DEADLINE):
            while not await stored(pg_url, EventKind.TICK_FINISHED):
                assert daemon.poll() is None, "the daemon exited before its first tick"
                await anyio.sleep(0.2)
        cut = datetime.now(UTC)
        await pg_proxy.stop()
        await until(receivers.triggers, "the outage page")
        (page,) = receivers.triggers()
        assert page["payload"]["severity"] == "critical"
        (tried,) = page["payload"]["custom_details"]["tried"]
        assert "no replica can renew its lease, so none acts" in tried
        assert [m["text"].split("]")[0] for m in receivers.slack] == ["[CRITICAL"]

        await pg_proxy.start()
        await until(receivers.resolves, "the resolve")
        back = datetime.now(UTC)
        (resolve,) = receivers.resolves()
        assert resolve["dedup_key"] == page["dedup_key"]
        await until(lambda: len(receivers.slack) == 2, "the resolve on Slack")
        told = str(receivers.slack[1]["blocks"])
        assert "no replica led, so nothing was observed, healed or rolled back" in told
    finally:
        if daemon.poll() is None:
            stop(daemon)
    started = await stored(pg_url, EventKind.ACTION_STARTED, since=cut)
    after = await stored(pg_url, EventKind.ACTION_STARTED, since=back)
    assert started == after, "an action was started while the database was away"
