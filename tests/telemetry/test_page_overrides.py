"""The page's overrides, leader, budgets and notification incidents over HTTP (loop: tests/loop)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from jarvis.loop.admin import lease_view
from jarvis.loop.overrides import OverrideQueue
from jarvis.model import EventKind
from jarvis.notify import Severity
from jarvis.notify.alerts import AlertChange
from jarvis.notify.groups import Grouper, Route, Timing
from jarvis.safety import Remaining
from jarvis.store import EventStore
from jarvis.store.lease import PgLease
from jarvis.telemetry.web.view import LeaderView, NotificationView
from tests.telemetry.page_support import ADMIN_TOKEN, READ_TOKEN, page_server
from tests.telemetry.test_page import browser, login

pytestmark = pytest.mark.anyio

API = "sim://ai-dawg-api"


async def audits(store: EventStore) -> list[tuple[str, str]]:
    events = await store.events(kinds=[EventKind.ADMIN_REQUEST.value], limit=100)
    return [(str(e.payload["result"]), str(e.payload["detail"])) for e in events]


async def test_without_a_loop_the_page_offers_no_override(tmp_path: Path) -> None:
    """With no daemon loop behind the server there is no form, and a posted one is refused."""
    async with page_server(tmp_path) as served, browser() as session:
        csrf = await login(session, served.base, ADMIN_TOKEN)
        async with session.get(f"{served.base}/") as resp:
            assert 'action="/ui/override"' not in await resp.text()
        form = {"resource": API, "action": "restart", "csrf": csrf}
        async with session.post(f"{served.base}/ui/override", data=form) as resp:
            assert "overrides need the running daemon" in await resp.text()
        assert (await audits(served.store))[-1][0] == "refused"


async def test_a_forged_or_read_only_override_is_refused_and_audited(tmp_path: Path) -> None:
    """No CSRF token, or the read token: nothing is queued, and each refusal is recorded."""
    queue = OverrideQueue(wait=0.2)
    async with page_server(tmp_path, overrides=queue) as served:
        async with browser() as session:
            await login(session, served.base, ADMIN_TOKEN)
            form = {"resource": API, "action": "restart", "csrf": "forged"}
            async with session.post(f"{served.base}/ui/override", data=form) as resp:
                assert resp.status == 403
        async with browser() as session:
            csrf = await login(session, served.base, READ_TOKEN)
            async with session.get(f"{served.base}/") as resp:
                html = await resp.text()
            assert 'action="/ui/override"' not in html
            assert "Log in with the admin token to restart" in html
            form = {"resource": API, "action": "scale", "replicas": "2", "csrf": csrf}
            async with session.post(f"{served.base}/ui/override", data=form) as resp:
                assert "may not change anything" in await resp.text()
        results = [r for r, _ in await audits(served.store)]
    assert results == ["ok", "forbidden", "ok", "forbidden"]


async def test_a_malformed_override_is_said_in_one_line_and_audited(tmp_path: Path) -> None:
    """A bad URI, kind or replica count is refused before anything is queued."""
    queue = OverrideQueue(wait=0.2)
    async with page_server(tmp_path, overrides=queue) as served, browser() as session:
        csrf = await login(session, served.base, ADMIN_TOKEN)
        said = []
        for form in (
            {"resource": "not-a-uri", "action": "restart"},
            {"resource": API, "action": "delete"},
            {"resource": API, "action": "scale", "replicas": "many"},
            {"resource": API, "action": "scale", "replicas": "-1"},
        ):
            async with session.post(
                f"{served.base}/ui/override", data={**form, "csrf": csrf}
            ) as resp:
                assert resp.status == 200
                said.append(await resp.text())
        results = [r for r, _ in await audits(served.store)]
    assert "override refused" in said[0]
    assert "&#39;delete&#39; is not one of restart, rollback, scale" in said[1]
    assert "&#39;many&#39; is not a whole number" in said[2]
    assert "must be 0 or more" in said[3]
    assert results == ["ok"] + ["bad_request"] * 4


async def test_an_override_no_tick_takes_says_it_was_withdrawn(tmp_path: Path) -> None:
    """With no tick to take it, the page says nothing was done; the audit says refused."""
    queue = OverrideQueue(wait=0.2)
    async with page_server(tmp_path, overrides=queue) as served, browser() as session:
        csrf = await login(session, served.base, ADMIN_TOKEN)
        form = {"resource": API, "action": "restart", "reason": "stuck", "csrf": csrf}
        async with session.post(f"{served.base}/ui/override", data=form) as resp:
            html = await resp.text()
        assert "withdrawn and nothing was done" in html
        assert (await audits(served.store))[-1][0] == "refused"


async def test_the_leader_and_the_budgets_left_are_shown(tmp_path: Path) -> None:
    """The lease's holder, epoch and expiry, and each budget's used and remaining."""
    until = datetime(2026, 11, 28, 23, 0, 15, tzinfo=UTC)

    async def leader() -> LeaderView:
        return LeaderView(
            single_node=False, here="replica-b", replica="replica-a", epoch=7, expires_at=until
        )

    left = [
        Remaining("restarts", "sim", "restart", limit=3, used=3),
        Remaining("night", "*", "scale", limit=None, used=0),
    ]
    async with (
        page_server(tmp_path, leader=leader, budgets_left=lambda: left) as served,
        browser() as session,
    ):
        await login(session, served.base, READ_TOKEN)
        async with session.get(f"{served.base}/") as resp:
            html = await resp.text()
    assert "another replica" in html
    assert 'id="leader-replica" class="id">replica-a<' in html
    assert 'id="leader-epoch">7<' in html
    assert "2026-11-28T23:00:15+00:00" in html
    assert '<tr class="spent"><td class="nowrap">restarts</td>' in html
    assert "3 of 3" in html and "off now" in html


async def test_on_sqlite_the_page_says_single_node(tmp_path: Path) -> None:
    """One node: no lease to show."""

    async def leader() -> LeaderView:
        return LeaderView(single_node=True)

    async with page_server(tmp_path, leader=leader) as served, browser() as session:
        await login(session, served.base, READ_TOKEN)
        async with session.get(f"{served.base}/") as resp:
            html = await resp.text()
    assert 'id="leader-state" class="big">single node<' in html


async def test_the_lease_view_reads_the_holder_and_epoch_on_postgres(pg_url: str) -> None:
    """`lease_view` names the holder, its epoch and expiry, and whether it is this replica."""
    store = await EventStore.connect(pg_url, auto_migrate=True)
    try:
        assert (await lease_view(store.engine, "b")).replica is None
        lease = PgLease(store.engine, "a", duration=600)
        epoch = await lease.acquire()
        here = await lease_view(store.engine, "a")
        there = await lease_view(store.engine, "b")
    finally:
        await store.aclose()
    assert (here.replica, here.epoch, here.expired) == ("a", epoch, False)
    assert here.leads_here and not there.leads_here
    assert here.expires_at is not None and here.expires_at > datetime.now(UTC)


async def test_open_notification_incidents_are_shown_when_channels_are_configured(
    tmp_path: Path,
) -> None:
    """The notifier's open groups appear (channel, cause, since, alerts, whether sent)."""
    grouper = Grouper([Route("pagerduty", frozenset(Severity))], Timing())
    since = datetime(2026, 11, 28, 22, 0, tzinfo=UTC)
    grouper.ingest(
        AlertChange(
            "breaker:aws",
            firing=True,
            at=since,
            event_id=1,
            cause="provider_degraded",
            provider="aws",
            severity=Severity.CRITICAL,
        ),
        since,
    )

    def notifications() -> list[NotificationView]:
        return [
            NotificationView(i.channel, i.cause, i.provider, i.since, i.alerts, i.sent)
            for i in grouper.incidents()
        ]

    async with page_server(tmp_path, notifications=notifications) as served, browser() as session:
        await login(session, served.base, READ_TOKEN)
        async with session.get(f"{served.base}/") as resp:
            html = await resp.text()
    section = html[html.index('id="notifications"') :]
    assert "pagerduty" in section and "provider_degraded" in section
    assert "2026-11-28T22:00:00+00:00" in section and "waiting" in section


async def test_without_channels_there_is_no_notification_section(tmp_path: Path) -> None:
    """No notifier configured: nothing to show, and the page does not pretend otherwise."""
    async with page_server(tmp_path) as served, browser() as session:
        await login(session, served.base, READ_TOKEN)
        async with session.get(f"{served.base}/") as resp:
            assert 'id="notifications"' not in await resp.text()
