"""An event store that stays unreachable is reported straight to the channels, once."""

from __future__ import annotations

import itertools
from pathlib import Path

import anyio
import pytest

from tests.notify.conftest import RigFactory
from tests.notify.receivers import Receivers
from tests.store.tcp_proxy import TcpProxy

pytestmark = pytest.mark.anyio


async def test_the_store_unreachable_for_five_minutes_pages_once_and_resolves_when_back(
    make_rig: RigFactory, receivers: Receivers, pg_proxy: TcpProxy, pg_url: str
) -> None:
    """Past store_unreachable_after, one page with no outbox; the store answering resolves it."""
    rig = await make_rig(url=pg_proxy.url_for(pg_url))
    await pg_proxy.stop()
    await rig.rounds(24, step=10.0)  # four minutes
    assert receivers.pagerduty == []
    await rig.rounds(60, step=10.0)  # fourteen minutes in all
    (page,) = receivers.triggers()
    assert "event store has been unreachable" in page["payload"]["summary"]
    assert len(receivers.slack) == 1
    assert len(receivers.emails) == 1
    await pg_proxy.start()
    await rig.rounds(3, step=10.0)
    (resolve,) = receivers.resolves()
    assert resolve["dedup_key"] == page["dedup_key"]
    assert len(receivers.triggers()) == 1


async def test_an_outage_the_spool_absorbs_warns_and_pages_only_past_half_an_hour(
    make_rig: RigFactory, receivers: Receivers, pg_proxy: TcpProxy, pg_url: str, tmp_path: Path
) -> None:
    """With a spool, five minutes down is a warning (Slack, email); thirty minutes is a page."""
    rig = await make_rig(
        url=pg_proxy.url_for(pg_url),
        spool_path=tmp_path / "spool.jsonl",
    )
    await pg_proxy.stop()
    await rig.rounds(84, step=10.0)  # fourteen minutes: past store_unreachable_after
    assert receivers.triggers() == []
    assert len(receivers.slack) == 1
    (warning,) = receivers.emails
    assert "spooling events" in str(warning)
    await rig.rounds(100, step=10.0)  # thirty-one minutes in all
    (page,) = receivers.triggers()
    assert page["payload"]["severity"] == "critical"
    assert len(receivers.slack) == 2
    await pg_proxy.start()
    await rig.rounds(3, step=10.0)
    (resolve,) = receivers.resolves()
    assert resolve["dedup_key"] == page["dedup_key"]


async def test_an_outage_the_spool_absorbs_that_ends_by_itself_pages_no_one(
    make_rig: RigFactory, receivers: Receivers, pg_proxy: TcpProxy, pg_url: str, tmp_path: Path
) -> None:
    """A fourteen-minute outage with a spool warns and resolves on Slack, and never pages."""
    rig = await make_rig(
        url=pg_proxy.url_for(pg_url),
        spool_path=tmp_path / "spool.jsonl",
    )
    await pg_proxy.stop()
    await rig.rounds(84, step=10.0)
    await pg_proxy.start()
    await rig.rounds(3, step=10.0)
    assert receivers.pagerduty == []
    assert len(receivers.slack) == 2  # the warning and its resolution


async def test_a_notifier_that_starts_with_the_store_away_reports_the_outage(
    make_rig: RigFactory, receivers: Receivers, pg_proxy: TcpProxy, pg_url: str
) -> None:
    """A notifier whose first read of its saved state finds no database waits and pages,
    rather than ending the daemon it runs in with the driver's traceback."""
    rig = await make_rig(url=pg_proxy.url_for(pg_url))
    await pg_proxy.stop()
    with anyio.fail_after(60):
        async with anyio.create_task_group() as group:
            group.start_soon(rig.notifier.run)  # loads its state again, as `jarvis run` does
            for _ in itertools.count():  # polled: the receivers run on a thread of their own
                if receivers.triggers():
                    break
                await anyio.sleep(0.05)
            group.cancel_scope.cancel()
    (page,) = receivers.triggers()
    assert "event store has been unreachable" in page["payload"]["summary"]
