"""An event store that stays unreachable is reported straight to the channels, once,
saying what is true meanwhile: under a lease (`jarvis run` on PostgreSQL) no replica
acts, spool or not, which pages; one node with a spool acts on, which warns."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.notify.conftest import RigFactory
from tests.notify.receivers import Receivers
from tests.notify.test_delivery import text_of
from tests.store.tcp_proxy import TcpProxy

pytestmark = pytest.mark.anyio

HEALTHY = "Every resource of this incident is healthy."


def said(message: dict[str, Any]) -> str:
    """Everything a Slack message shows: its blocks' texts."""
    return "\n".join(
        str(block.get("text", {}).get("text", "")) + str(block.get("elements", ""))
        for block in message["blocks"]
    )


async def test_a_leased_loop_with_a_spool_pages_at_five_minutes_saying_no_replica_acts(
    make_rig: RigFactory, receivers: Receivers, pg_proxy: TcpProxy, pg_url: str, tmp_path: Path
) -> None:
    """Under a lease the spool absorbs nothing that matters: nobody acts, so the outage pages
    once store_unreachable_after has passed, and no channel is told that actions go on."""
    rig = await make_rig(
        url=pg_proxy.url_for(pg_url), spool_path=tmp_path / "spool.jsonl", leased=True
    )
    await pg_proxy.stop()
    await rig.rounds(29, step=10.0)  # under five minutes
    assert receivers.slack == []
    await rig.rounds(7, step=10.0)  # six minutes in all
    (page,) = receivers.triggers()
    assert page["payload"]["severity"] == "critical"
    assert "event store has been unreachable" in page["payload"]["summary"]
    (tried,) = page["payload"]["custom_details"]["tried"]
    assert "no replica can renew its lease, so none acts" in tried
    (slack,) = receivers.slack
    assert slack["text"].startswith("[CRITICAL]")
    (email,) = receivers.emails
    for told in (said(slack), *text_of(email)):
        assert "nothing is observed, healed or rolled back" in told
        assert "actions go on" not in told
        assert "spooling" not in told


async def test_the_end_of_a_leased_outage_says_how_long_nothing_was_acted_on(
    make_rig: RigFactory, receivers: Receivers, pg_proxy: TcpProxy, pg_url: str, tmp_path: Path
) -> None:
    """The resolve gives the outage's span and that nobody acted in it, not that every
    resource is healthy: nobody looked."""
    rig = await make_rig(
        url=pg_proxy.url_for(pg_url), spool_path=tmp_path / "spool.jsonl", leased=True
    )
    await pg_proxy.stop()
    await rig.rounds(84, step=10.0)  # fourteen minutes
    await pg_proxy.start()
    await rig.rounds(3, step=10.0)
    (page,) = receivers.triggers()
    (resolve,) = receivers.resolves()
    assert resolve["dedup_key"] == page["dedup_key"]
    _, back = receivers.slack
    (_, email) = receivers.emails
    for told in (said(back), *text_of(email)):
        assert "the event store answers again" in told
        assert "(14 min)" in told
        assert "no replica led, so nothing was observed, healed or rolled back" in told
        assert HEALTHY not in told


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
    """One node with a spool acts on: five minutes down is a warning (Slack, email) that says
    so; thirty minutes is a page."""
    rig = await make_rig(
        url=pg_proxy.url_for(pg_url),
        spool_path=tmp_path / "spool.jsonl",
    )
    await pg_proxy.stop()
    await rig.rounds(84, step=10.0)  # fourteen minutes: past store_unreachable_after
    assert receivers.triggers() == []
    assert len(receivers.slack) == 1
    (warning,) = receivers.emails
    (plain, _) = text_of(warning)
    assert "spooling events and retry budgets to the local file; actions go on" in plain
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
    """A fourteen-minute outage with a spool warns and resolves on Slack, and never pages;
    the resolve says the node acted on and the spool replays."""
    rig = await make_rig(
        url=pg_proxy.url_for(pg_url),
        spool_path=tmp_path / "spool.jsonl",
    )
    await pg_proxy.stop()
    await rig.rounds(84, step=10.0)
    await pg_proxy.start()
    await rig.rounds(3, step=10.0)
    assert receivers.pagerduty == []
    _, back = receivers.slack  # the warning and its resolution
    assert back["text"] == "[RESOLVED] store_unreachable"
    assert "spooling its events and retry budgets while acting on" in said(back)
    assert HEALTHY not in said(back)


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
