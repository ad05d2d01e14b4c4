"""The status page in a real browser: headless Chromium (Debian's) driven by Playwright.

One test drives a real `jarvis run` daemon on the simulated fleet: log in,
wait for the broken service to be quarantined, reset it from the page, engage
the kill switch from the page and see the daemon stop acting (its proposals
recorded as ``action.blocked`` with reason ``killswitch``, nothing started),
then release it. The other serves the page in-process over a real store
seeded with hostile names and checks that their script never runs. Nothing
is timed: each step waits for what it needs, with generous deadlines.
Screenshots go to tmp_path and, for people to look at, /work/scratch/shots/
when that directory exists.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import sqlite3
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO

import aiohttp
import pytest
from playwright.async_api import Browser, Page, async_playwright

from tests.cli.conftest import jarvis_argv, jarvis_env
from tests.daemon import http_port, wait_for
from tests.telemetry.page_support import ADMIN_TOKEN, HOSTILE, READ_TOKEN, page_server

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = Path("/work/scratch/shots")
BROKEN = "sim://ai-dawg-ai-brain"
#: Seconds any one step may wait: a loaded machine can take 20 s to start the daemon.
DEADLINE = 180.0

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin"),
    pytest.mark.timeout(600),
]


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox"]
        )
        yield launched
        await launched.close()


async def shot(page: Page, tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    _keep(path)


def _keep(path: Path) -> None:
    """A copy for the people reviewing the page, when their directory exists."""
    if SHOTS.is_dir():
        shutil.copy(path, SHOTS / path.name)


def rows(db: Path, sql: str, *args: object) -> list[tuple[object, ...]]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as conn:
        return conn.execute(sql, args).fetchall()


async def until(what: str, check: object, deadline: float = DEADLINE) -> None:
    """Poll ``check()`` (sync or async) until it is true, or fail naming ``what``."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        result = check()  # type: ignore[operator]
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"{what}: not within {deadline:g} s")


async def login(page: Page, base: str, token: str) -> None:
    await page.goto(base + "/")
    await page.fill("#token", token)
    await page.click("button[type=submit]")
    await page.wait_for_selector("#killswitch")


def _start(tmp_path: Path, env: dict[str, str], sink: IO[str]) -> subprocess.Popen[bytes]:
    """`jarvis run` on a port it binds itself; `tests.daemon.http_port` reads which."""
    # The log goes to a file: a pipe nobody reads fills up and blocks the daemon.
    return subprocess.Popen(
        jarvis_argv("run", "--interval", "0.5", "--http-port", "0"),
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=sink,
    )


@pytest.mark.anyio
async def test_kill_switch_and_reset_from_the_page_stop_and_free_the_daemon(
    browser: Browser, tmp_path: Path
) -> None:
    """Engaged from the page, the daemon blocks every action; a reset lifts the quarantine."""
    db = tmp_path / "jarvis.db"
    env = jarvis_env(
        tmp_path,
        JARVIS_ADMIN_TOKEN=ADMIN_TOKEN,
        JARVIS_READ_TOKEN=READ_TOKEN,
        JARVIS_HTTP__HOST="127.0.0.1",
    )
    log = tmp_path / "daemon.log"
    with log.open("w") as sink:
        daemon = _start(tmp_path, env, sink)
        try:
            port = await asyncio.to_thread(http_port, log, time.monotonic() + DEADLINE, daemon)
            base = f"http://127.0.0.1:{port}"
            await asyncio.to_thread(wait_for, f"{base}/readyz", time.monotonic() + DEADLINE)
            page = await browser.new_page(viewport={"width": 1280, "height": 900})
            await page.goto(base + "/")
            await shot(page, tmp_path, "page-login")
            await login(page, base, ADMIN_TOKEN)

            async def quarantined() -> bool:
                await page.reload()
                return await page.locator("#quarantine td.id", has_text=BROKEN).count() > 0

            await until(f"{BROKEN} quarantined on the page", quarantined)
            await shot(page, tmp_path, "page-quarantined")

            row = page.locator("#quarantine tr", has_text=BROKEN)
            await row.locator("button.reset").click()
            await page.wait_for_selector(f".flash:has-text('for {BROKEN}')")
            assert await page.locator("#quarantine td.id", has_text=BROKEN).count() == 0
            resets = rows(db, "SELECT payload FROM events WHERE kind = 'retries.reset'")
            assert [json.loads(str(p))["actor"] for (p,) in resets] == ["admin-token"]

            await page.fill("#engage-reason", "checking from the status page")
            await page.click("#engage")
            await page.wait_for_selector("#ks-state:has-text('ENGAGED')")
            (engaged_id,) = rows(
                db, "SELECT max(id) FROM events WHERE kind = 'killswitch.engaged'"
            )[0]

            def blocked() -> list[tuple[object, ...]]:
                return rows(
                    db,
                    "SELECT id FROM events WHERE kind = 'action.blocked' "
                    "AND reason = 'killswitch' AND id > ?",
                    engaged_id,
                )

            await until("an action blocked by the kill switch", blocked)
            # The live feed brings the refusal to the open page without a reload.
            await page.wait_for_selector(
                "#events tr.action:has-text('killswitch')", timeout=DEADLINE * 1000
            )
            await shot(page, tmp_path, "page-engaged")
            first_block = min(int(str(i)) for (i,) in blocked())
            started = rows(
                db, "SELECT id FROM events WHERE kind = 'action.started' AND id > ?", first_block
            )
            assert started == [], "the daemon started an action after it saw the kill switch"

            await page.click("#release")
            await page.wait_for_selector("#ks-state:has-text('released')")
            await shot(page, tmp_path, "page-released")
            flips = rows(
                db,
                "SELECT kind, payload FROM events WHERE kind LIKE 'killswitch.%' ORDER BY id",
            )
            assert [(k, json.loads(str(p))["actor"]) for k, p in flips] == [
                ("killswitch.engaged", "admin-token"),
                ("killswitch.released", "admin-token"),
            ]
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=60)
    assert daemon.returncode == 0, log.read_text()
    assert ADMIN_TOKEN not in db.read_bytes().decode("utf-8", "replace")


@pytest.mark.anyio
async def test_a_hostile_resource_name_renders_inert_in_the_browser(
    browser: Browser, tmp_path: Path
) -> None:
    """A resource named with <script> and onerror shows as text; none of its code runs."""
    async with page_server(tmp_path) as served:
        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        await login(page, served.base, READ_TOKEN)
        cell = page.locator("#quarantine td.id").first
        assert await cell.inner_text() == HOSTILE
        await shot(page, tmp_path, "page-hostile-readonly")
        assert await page.evaluate("window.pwned === undefined")
        assert await page.locator("#engage").count() == 0


@pytest.mark.anyio
async def test_a_flip_made_elsewhere_reaches_the_open_page_live(
    browser: Browser, tmp_path: Path
) -> None:
    """Engaged through the API, the open page shows it and its event without a reload."""
    async with page_server(tmp_path) as served:
        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        await login(page, served.base, ADMIN_TOKEN)
        assert await page.locator("#ks-changed").is_hidden()
        async with (
            aiohttp.ClientSession() as client,
            client.post(
                f"{served.base}/v1/killswitch",
                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                json={"engaged": True, "reason": "from the API"},
            ) as resp,
        ):
            assert resp.status == 200
        await page.wait_for_selector("#ks-changed", state="visible", timeout=DEADLINE * 1000)
        await page.wait_for_selector("#ks-state:has-text('ENGAGED')", timeout=DEADLINE * 1000)
        await page.wait_for_selector(
            "#events tr.killswitch-engaged:has-text('from the API')", timeout=DEADLINE * 1000
        )
        assert await page.inner_text("#ks-reason") == "from the API"
        assert await page.inner_text("#ks-actor") == "admin-token"
        await shot(page, tmp_path, "page-flipped-elsewhere")
