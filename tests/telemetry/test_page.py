"""The status page over HTTP: logins, CSRF, audit, escaping, and never a secret."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest

from jarvis.loop import events as ev
from jarvis.model import (
    Action,
    BlockReason,
    ErrorKind,
    Event,
    EventKind,
    Outcome,
    ResourceRef,
    Restart,
    RetryState,
)
from jarvis.store import EventStore, MemoryBackend
from tests.telemetry.page_support import ADMIN_TOKEN, HOSTILE, READ_TOKEN, page_server

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def browser() -> aiohttp.ClientSession:
    """A client that keeps cookies from 127.0.0.1, as a browser does."""
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


async def login(session: aiohttp.ClientSession, base: str, token: str) -> str:
    """Log in; return the page's CSRF token."""
    async with session.post(f"{base}/login", data={"token": token}) as resp:
        assert resp.status == 200  # followed the 303 to the page
        html = await resp.text()
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found is not None
    return found.group(1)


async def shown_on_page(tmp_path: Path, event: Event) -> tuple[str, dict[str, str]]:
    """The page's row of ``event`` (on ``sim://web``) as loaded, and as the live feed sends it."""
    async with page_server(tmp_path) as served, browser() as session:
        served.store.append([event])
        await served.store.flush()
        await login(session, served.base, ADMIN_TOKEN)
        async with session.get(f"{served.base}/") as resp:
            html = await resp.text()
        async with session.get(f"{served.base}/ui/events?after=0") as resp:
            live = (await resp.json())["events"]
    (row,) = [line for line in html.splitlines() if "sim://web" in line]
    (shown,) = [e for e in live if e["resource"] == "sim://web"]
    return row, shown


@pytest.mark.anyio
async def test_the_page_asks_for_a_token_and_the_cookie_is_httponly_strict(
    tmp_path: Path,
) -> None:
    """Without a credential the page is a login form; a login sets a locked-down cookie."""
    async with page_server(tmp_path) as served, browser() as session:
        async with session.get(f"{served.base}/") as resp:
            assert resp.status == 401
            assert 'action="/login"' in await resp.text()
            assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
        async with session.post(
            f"{served.base}/login", data={"token": ADMIN_TOKEN}, allow_redirects=False
        ) as resp:
            assert resp.status == 303
            cookie = resp.headers["Set-Cookie"]
        assert "HttpOnly" in cookie
        assert "SameSite=Strict" in cookie
        assert ADMIN_TOKEN not in cookie


@pytest.mark.anyio
async def test_hostile_names_render_escaped_and_no_secret_is_shown(tmp_path: Path) -> None:
    """A resource named with <script> appears as text; no token appears anywhere."""
    async with page_server(tmp_path) as served, browser() as session:
        await login(session, served.base, ADMIN_TOKEN)
        async with session.get(f"{served.base}/") as resp:
            html = await resp.text()
    assert "<script>window.pwned" not in html
    assert "<img src=x" not in html
    assert "&lt;script&gt;window.pwned=1&lt;/script&gt;" in html
    assert "&lt;b&gt;boom&lt;/b&gt;" in html
    assert ADMIN_TOKEN not in html and READ_TOKEN not in html
    assert html.count("<script") == 1  # the page's own script, from /ui/static


@pytest.mark.anyio
async def test_a_form_without_the_session_csrf_token_is_refused_and_audited(
    tmp_path: Path,
) -> None:
    """A forged engage (no CSRF token, or another session's) changes nothing and is recorded."""
    async with page_server(tmp_path) as served, browser() as session:
        await login(session, served.base, ADMIN_TOKEN)
        form = {"action": "engage", "reason": "forged", "csrf": "not-the-token"}
        async with session.post(f"{served.base}/ui/killswitch", data=form) as resp:
            assert resp.status == 403
        events = await served.store.events(limit=50)
    kinds = [e.kind for e in events]
    assert EventKind.KILLSWITCH_ENGAGED not in kinds
    audits = [e for e in events if e.kind is EventKind.ADMIN_REQUEST]
    assert [a.payload["result"] for a in audits] == ["ok", "forbidden"]  # login, then refusal


@pytest.mark.anyio
async def test_the_read_token_sees_the_page_and_changes_nothing(tmp_path: Path) -> None:
    """A read-token session has no forms; a hand-made engage is refused and audited."""
    async with page_server(tmp_path) as served, browser() as session:
        csrf = await login(session, served.base, READ_TOKEN)
        async with session.get(f"{served.base}/") as resp:
            html = await resp.text()
        assert 'action="/ui/killswitch"' not in html
        assert "read-token" in html
        form = {"action": "engage", "reason": "x", "csrf": csrf}
        async with session.post(f"{served.base}/ui/killswitch", data=form) as resp:
            assert "may not change anything" in await resp.text()
        events = await served.store.events(limit=50)
    assert EventKind.KILLSWITCH_ENGAGED not in [e.kind for e in events]
    assert [e.payload["result"] for e in events if e.kind is EventKind.ADMIN_REQUEST] == [
        "ok",
        "forbidden",
    ]


@pytest.mark.anyio
async def test_engage_release_and_reset_are_recorded_as_the_admin_token(tmp_path: Path) -> None:
    """Each change from the page is made as admin-token and audited; a pasted token is redacted."""
    async with page_server(tmp_path) as served, browser() as session:
        csrf = await login(session, served.base, ADMIN_TOKEN)
        base = served.base
        engage = {"action": "engage", "reason": f"look {ADMIN_TOKEN}", "csrf": csrf}
        async with session.post(f"{base}/ui/killswitch", data=engage) as resp:
            html = await resp.text()
        assert "ENGAGED" in html and ADMIN_TOKEN not in html
        async with session.post(
            f"{base}/ui/killswitch", data={"action": "release", "csrf": csrf}
        ) as resp:
            assert "released" in await resp.text()
        reset = {"resource": HOSTILE, "csrf": csrf}
        async with session.post(f"{base}/ui/retries/reset", data=reset) as resp:
            assert "Nothing is quarantined." in await resp.text()
        async with session.post(f"{base}/ui/retries/reset", data=reset) as resp:
            assert "not in the ledger" in await resp.text()
        events = await served.store.events(limit=100)
    flips = [e for e in events if e.kind.value.startswith("killswitch.")]
    assert [(e.kind, e.payload["actor"]) for e in flips] == [
        (EventKind.KILLSWITCH_ENGAGED, "admin-token"),
        (EventKind.KILLSWITCH_RELEASED, "admin-token"),
    ]
    assert flips[0].reason == "look [redacted]"
    resets = [e for e in events if e.kind is EventKind.RETRIES_RESET]
    assert [(e.resource, e.payload["actor"]) for e in resets] == [(HOSTILE, "admin-token")]
    audits = [e.payload["result"] for e in events if e.kind is EventKind.ADMIN_REQUEST]
    assert audits == ["ok", "ok", "ok", "ok", "bad_request"]
    assert all(ADMIN_TOKEN not in repr(e) for e in events)


@pytest.mark.anyio
async def test_without_tokens_the_page_is_disabled(tmp_path: Path) -> None:
    """With no token configured the page says how to enable it and shows nothing else, not even
    a link back to itself."""
    async with (
        page_server(tmp_path, admin_token=None) as served,
        browser() as s,
        s.get(f"{served.base}/") as resp,
    ):
        assert resp.status == 403
        html = await resp.text()
    assert "JARVIS_READ_TOKEN" in html
    assert "sim://" not in html
    # No way back: "Back to the status page" led to this same page.
    assert 'href="/"' not in html


@pytest.mark.anyio
async def test_an_oversized_login_is_refused_and_audited(tmp_path: Path) -> None:
    """A form body past the server's limit is a 413 page, recorded like any other attempt."""
    async with page_server(tmp_path) as served, browser() as session:
        body = io.BytesIO(b"token=" + b"x" * (2 * 1024 * 1024))
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        async with session.post(f"{served.base}/login", data=body, headers=headers) as resp:
            assert resp.status == 413
            assert "form: unreadable" in await resp.text()
        events = await served.store.events(limit=10)
    audits = [e.payload["result"] for e in events if e.kind is EventKind.ADMIN_REQUEST]
    assert audits == ["bad_request"]


@pytest.mark.anyio
async def test_the_page_renders_while_the_store_is_away(tmp_path: Path) -> None:
    """With the database away the page still shows the kill switch and says what is missing."""
    backend = MemoryBackend()
    store = await EventStore.in_memory(backend=backend)
    async with page_server(tmp_path, store=store) as served, browser() as session:
        await login(session, served.base, ADMIN_TOKEN)
        backend.available = False
        async with session.get(f"{served.base}/") as resp:
            assert resp.status == 200
            html = await resp.text()
        async with session.get(f"{served.base}/ui/events?after=0") as resp:
            assert resp.status == 503
    assert 'id="ks-state" class="state good">released' in html
    assert "unavailable (StoreError)" in html


@pytest.mark.anyio
async def test_guessing_tokens_is_throttled_and_audited(tmp_path: Path) -> None:
    """After five wrong tokens from one address, even the right one is refused for a while."""
    async with page_server(tmp_path) as served, browser() as session:
        statuses = []
        for token in [*(f"guess-{n}" for n in range(5)), ADMIN_TOKEN]:
            async with session.post(f"{served.base}/login", data={"token": token}) as resp:
                statuses.append(resp.status)
        events = await served.store.events(limit=20)
    assert statuses == [401, 401, 401, 401, 401, 429]
    audits = [e.payload["result"] for e in events if e.kind is EventKind.ADMIN_REQUEST]
    assert audits == ["unauthorized"] * 5 + ["forbidden"]


@pytest.mark.anyio
async def test_a_csrf_field_that_decodes_to_a_lone_surrogate_is_refused(tmp_path: Path) -> None:
    """A form whose CSRF field decodes (UTF-7) to a lone surrogate is a 403, not a 500."""
    async with page_server(tmp_path) as served, browser() as session:
        await login(session, served.base, ADMIN_TOKEN)
        parts = [
            (b'name="action"', b"engage"),
            (b'name="reason"', b"forged"),
            (b'name="csrf"\r\nContent-Type: text/plain; charset=utf-7', b"+2AA-"),
        ]
        body = b"".join(
            b"--B\r\nContent-Disposition: form-data; " + name + b"\r\n\r\n" + value + b"\r\n"
            for name, value in parts
        )
        headers = {"Content-Type": "multipart/form-data; boundary=B"}
        async with session.post(
            f"{served.base}/ui/killswitch", data=body + b"--B--\r\n", headers=headers
        ) as resp:
            assert resp.status == 403
        events = await served.store.events(limit=50)
    assert EventKind.KILLSWITCH_ENGAGED not in [e.kind for e in events]


@pytest.mark.anyio
async def test_an_action_the_kill_switch_withheld_reads_as_blocked_not_failed(
    tmp_path: Path,
) -> None:
    """The `action.failed` closing a withheld intent is no red failure, on load or live:
    it reads as blocked by the kill switch, as the daily report counts it."""
    action = Action(ResourceRef("sim", "web"), Restart(), "heal", "unhealthy for 2 ticks")
    detail = "engaged while the intent was written, not sent: stop everything"
    withheld = Outcome.withheld(BlockReason.KILLSWITCH, detail)
    row, shown = await shown_on_page(tmp_path, ev.outcome_event("t1", T0, action, "a1", withheld))
    assert "action-failed" not in row and "action-withheld" in row
    assert f"blocked (killswitch): {detail}" in row
    assert shown["kind"] == "action.failed"  # the stored kind, as `jarvis events --kind` names it
    assert shown["label"] == "action.withheld"
    assert shown["row"] == "action action-withheld"
    assert shown["reason"] == f"blocked (killswitch): {detail}"


@pytest.mark.anyio
async def test_an_action_whose_target_was_gone_reads_as_gone_not_failed(tmp_path: Path) -> None:
    """The `action.failed` of a target deleted since observe is no red failure, on load or
    live: it reads as gone, deleted since observed, as the daily report counts it."""
    action = Action(ResourceRef("sim", "web"), Restart(), "heal", "unhealthy for 2 ticks")
    detail = "sim://web not found"
    gone = Outcome.failure(detail, kind=ErrorKind.GONE, code="NotFound")
    row, shown = await shown_on_page(tmp_path, ev.outcome_event("t1", T0, action, "a1", gone))
    assert "action-failed" not in row and "action-gone" in row
    assert f"gone (deleted since observed): {detail}" in row
    assert shown["kind"] == "action.failed"
    assert (shown["label"], shown["row"]) == ("action.gone", "action action-gone")
    assert shown["reason"] == f"gone (deleted since observed): {detail}"


@pytest.mark.anyio
async def test_resetting_a_resource_whose_only_ledger_row_is_empty_records_nothing(
    tmp_path: Path,
) -> None:
    """The page's reset of a row an undo left empty says it is not in the ledger, as the
    ledger shown does not list it; no `retries.reset` is recorded."""
    async with page_server(tmp_path) as served, browser() as session:
        served.store.stage_retry(RetryState("sim://web", "restart"))
        await served.store.flush()
        csrf = await login(session, served.base, ADMIN_TOKEN)
        reset = {"resource": "sim://web", "csrf": csrf}
        async with session.post(f"{served.base}/ui/retries/reset", data=reset) as resp:
            assert "not in the ledger" in await resp.text()
        events = await served.store.events(limit=100)
    assert [e for e in events if e.kind is EventKind.RETRIES_RESET] == []


@pytest.mark.anyio
async def test_an_unknown_static_file_is_the_ports_json_404(tmp_path: Path) -> None:
    """``/ui/static/NAME`` of no file answers the 404 every unknown path does, its path named."""
    async with page_server(tmp_path) as served, aiohttp.ClientSession() as session:
        answers = []
        for path in ("/ui/static/nope.css", "/nope"):
            async with session.get(f"{served.base}{path}") as resp:
                answers.append((resp.status, resp.content_type, await resp.json()))
    assert answers == [
        (404, "application/json", {"error": "Not Found", "path": "/ui/static/nope.css"}),
        (404, "application/json", {"error": "Not Found", "path": "/nope"}),
    ]
