"""Overrides from the status page in a real browser, through a real `jarvis run`.

Scale a simulated service from the page and see the daemon's own tick apply
it (``action.applied`` as ``admin-token``, policy ``operator``) and the page
say so; engage the kill switch and see a page override blocked with reason
``killswitch``, nothing started. Nothing is timed: each step waits for what
it needs, with generous deadlines.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.async_api import Browser

from jarvis.safety import Remaining
from jarvis.telemetry.web.view import LeaderView, NotificationView
from tests.cli.conftest import jarvis_env
from tests.daemon import http_port, wait_for
from tests.telemetry.page_support import ADMIN_TOKEN, READ_TOKEN, page_server
from tests.telemetry.test_page_browser import (
    CHROMIUM,
    DEADLINE,
    _start,
    browser,
    login,
    rows,
    shot,
    until,
)

COACH = "sim://ai-dawg-vocal-coach"

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin"),
    pytest.mark.timeout(600),
]
__all__ = ["browser"]  # the fixture, used by name


@asynccontextmanager
async def daemon(tmp_path: Path) -> AsyncIterator[str]:
    """A real `jarvis run` on SQLite in tmp_path with both tokens; yields its base URL."""
    env = jarvis_env(
        tmp_path,
        JARVIS_ADMIN_TOKEN=ADMIN_TOKEN,
        JARVIS_READ_TOKEN=READ_TOKEN,
        JARVIS_HTTP__HOST="127.0.0.1",
    )
    log = tmp_path / "daemon.log"
    with log.open("w") as sink:
        process = _start(tmp_path, env, sink)
        try:
            port = await asyncio.to_thread(http_port, log, time.monotonic() + DEADLINE, process)
            base = f"http://127.0.0.1:{port}"
            await asyncio.to_thread(wait_for, f"{base}/readyz", time.monotonic() + DEADLINE)
            yield base
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)
    assert process.returncode == 0, log.read_text()


@pytest.mark.anyio
async def test_scale_from_the_page_is_applied_and_the_kill_switch_blocks_an_override(
    browser: Browser, tmp_path: Path
) -> None:
    """The daemon's tick applies the page's scale as admin-token; engaged, it blocks a restart."""
    db = tmp_path / "jarvis.db"
    async with daemon(tmp_path) as base:
        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(DEADLINE * 1000)
        await login(page, base, ADMIN_TOKEN)
        assert await page.inner_text("#leader-state") == "single node"
        # The form suggests what the daemon observes (after a tick: reload until it has).
        suggestion = f"#known-resources option[value='{COACH}']"

        async def suggested() -> bool:
            await page.reload()
            return await page.locator(suggestion).count() > 0

        await until(f"{COACH} suggested by the override form", suggested)

        await page.fill("#override-resource", COACH)
        await page.select_option("#override-action", "scale")
        await page.fill("#override-replicas", "3")
        await page.fill("#override-reason", "load test at noon")
        await shot(page, tmp_path, "page2-override-form")
        await page.click("#override-submit")
        await page.wait_for_selector(f".flash:not(.bad):has-text('scale {COACH}: applied')")
        await page.wait_for_selector(f"#events tr.action-applied:has-text('{COACH}')")
        await shot(page, tmp_path, "page2-override-applied")
        applied = rows(
            db,
            "SELECT policy, payload FROM events WHERE kind = 'action.applied' "
            "AND resource = ? AND action_kind = 'scale'",
            COACH,
        )
        assert [(p, json.loads(str(d))["actor"]) for p, d in applied] == [
            ("operator", "admin-token")
        ]
        proposed = rows(
            db,
            "SELECT payload FROM events WHERE kind = 'action.proposed' AND policy = 'operator'",
        )
        assert [json.loads(str(d))["params"] for (d,) in proposed] == [{"replicas": 3}]

        await page.fill("#engage-reason", "freeze for the incident")
        await page.click("#engage")
        await page.wait_for_selector("#ks-state:has-text('ENGAGED')")
        (engaged_id,) = rows(db, "SELECT max(id) FROM events WHERE kind = 'killswitch.engaged'")[0]
        await page.fill("#override-resource", COACH)
        await page.select_option("#override-action", "restart")
        await page.click("#override-submit")
        await page.wait_for_selector(
            f".flash.bad:has-text('restart {COACH}: blocked (killswitch)')"
        )
        await shot(page, tmp_path, "page2-override-blocked")
        blocked = rows(
            db,
            "SELECT policy FROM events WHERE kind = 'action.blocked' AND reason = 'killswitch' "
            "AND action_kind = 'restart' AND resource = ? AND id > ?",
            COACH,
            engaged_id,
        )
        assert ("operator",) in blocked
        # A tick that read the switch just before the flip may still write its
        # intent after the flip's event (the switch is read right before each
        # apply): only ticks that began after the flip must start nothing.
        after_flip = rows(
            db, "SELECT id FROM events WHERE kind = 'tick.started' AND id > ?", engaged_id
        )
        assert after_flip, "the blocked override was decided by a tick after the flip"
        by_tick = (
            "SELECT s.id FROM events s JOIN events t"
            " ON t.tick_id = s.tick_id AND t.kind = 'tick.started'"
            " WHERE s.kind = 'action.started' AND t.id {} ?"
        )
        assert rows(db, by_tick.format("<"), engaged_id), "the scale's intent, found by its tick"
        assert rows(db, by_tick.format(">"), engaged_id) == []
        audit = rows(
            db,
            "SELECT payload FROM events WHERE kind = 'admin.request' AND payload LIKE ?",
            "%/ui/override%",
        )
        assert [json.loads(str(d))["result"] for (d,) in audit] == ["ok", "blocked"]


@pytest.mark.anyio
async def test_a_replica_page_shows_the_leader_budgets_and_notifications(
    browser: Browser, tmp_path: Path
) -> None:
    """On PostgreSQL the page names the leader and its term; budgets and incidents are tables."""
    until_ = datetime(2026, 11, 28, 23, 0, 15, tzinfo=UTC)

    async def leader() -> LeaderView:
        return LeaderView(
            single_node=False,
            here="jarvis-7d9f-b",
            replica="jarvis-7d9f-a",
            epoch=42,
            expires_at=until_,
        )

    left = [
        Remaining("restarts-per-hour", "*", "restart", limit=3, used=3),
        Remaining("business-hours", "ecs", "deploy", limit=None, used=0),
        Remaining("scale-per-service", "k8s", "scale", limit=5, used=2),
    ]
    incident = NotificationView("pagerduty", "provider_degraded", "aws", until_, 2, sent=True)
    async with page_server(
        tmp_path, leader=leader, budgets_left=lambda: left, notifications=lambda: [incident]
    ) as served:
        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        await login(page, served.base, READ_TOKEN)
        assert await page.inner_text("#leader-state") == "another replica"
        assert await page.inner_text("#leader-epoch") == "42"
        spent = page.locator("#budgets tr.spent td.left")
        assert await spent.inner_text() == "0"
        assert await page.locator("#notifications td", has_text="provider_degraded").count() == 1
        await shot(page, tmp_path, "page2-leader-budgets")
