"""``/unsubscribe`` on the daemon's HTTP server: a POST with a signed token opts out, nothing else.

The server is the daemon's (`HttpServer` with the route `jarvis.cli.surfaces`
wires), the opt-out goes through the customers sensor the composition root
built, into a real customers table; the next tick records the change.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin

import aiohttp
import pytest
from sqlalchemy import select, text

from jarvis.app import App
from jarvis.cli.surfaces import unsubscribe
from jarvis.loop.clock import VirtualClock
from jarvis.mail import unsubscribe_token
from jarvis.model import EventKind
from jarvis.store.customers import customers
from jarvis.telemetry.http import HttpServer
from jarvis.telemetry.metrics import Metrics
from tests.billing.conftest import sign_up

pytestmark = pytest.mark.anyio

SECRET = b"unsubscribe-secret-for-tests"


async def _ready() -> tuple[bool, dict[str, str]]:
    return True, {}


@pytest.fixture
async def served(
    make_app: Any, clock: VirtualClock, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[App, str]]:
    """An app with customer c1 and its daemon HTTP server; yields the app and the base URL."""
    monkeypatch.setenv("UNSUBSCRIBE_SECRET", SECRET.decode())
    app = await make_app()
    await sign_up(app, "c1", clock.now(), stripe_customer_id="cus_1")
    await app.reconciler.tick()
    clock.advance(30)
    route = unsubscribe(app.settings, app)
    assert route is not None
    server = HttpServer(
        host="127.0.0.1",
        port=0,
        metrics=Metrics(),
        healthy=lambda: (True, "ok"),
        ready=_ready,
        admin=None,
        admin_token=None,
        unsubscribe=route,
    )
    await server.start()
    try:
        yield app, f"http://127.0.0.1:{server.port}"
    finally:
        await server.stop()


async def _opted_out(app: App) -> tuple[bool, object]:
    async with app.store.engine.connect() as connection:
        row = (await connection.execute(select(customers).where(customers.c.id == "c1"))).one()
    return bool(row.marketing_opt_out), row.updated_at


class _Form(HTMLParser):
    """The first form of a page: its method, its action and its inputs' names and values."""

    def __init__(self) -> None:
        super().__init__()
        self.method = ""
        self.action: str | None = None
        self.fields: dict[str, str] = {}
        self._in_form = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "form" and self.action is None:
            self.method, self.action = values.get("method", ""), values.get("action", "")
            self._in_form = True
        elif tag == "input" and self._in_form and "name" in values:
            self.fields[values["name"]] = values.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._in_form = False


def _form(page: str) -> _Form:
    form = _Form()
    form.feed(page)
    return form


async def test_opening_the_link_asks_first_and_opts_nobody_out(served: tuple[App, str]) -> None:
    """GET, what mail scanners send for every link, shows a page whose button POSTs; no opt-out."""
    app, base = served
    token = unsubscribe_token("c1", SECRET)
    async with aiohttp.ClientSession() as session:
        for _ in range(3):
            async with session.get(f"{base}/unsubscribe", params={"token": token}) as response:
                assert response.status == 200
                assert response.content_type == "text/html"
                cache = response.headers.get("Cache-Control")
                page = await response.text()
    assert (await _opted_out(app))[0] is False
    assert cache == "no-store"
    form = _form(page)
    assert form.method.lower() == "post"
    assert form.action is not None
    assert token in form.action
    assert form.fields == {"List-Unsubscribe": "One-Click"}


async def test_the_button_on_the_page_opts_the_customer_out_and_the_next_tick_records_it(
    served: tuple[App, str],
) -> None:
    """The page's form, posted as a browser posts it: a confirmation page, opted out, recorded."""
    app, base = served
    url = f"{base}/unsubscribe?token={unsubscribe_token('c1', SECRET)}"
    browser = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    async with aiohttp.ClientSession(headers=browser) as session:
        async with session.get(url) as response:
            form = _form(await response.text())
        assert form.action is not None
        for _ in range(2):
            async with session.post(urljoin(url, form.action), data=form.fields) as response:
                assert response.status == 200
                assert response.content_type == "text/html"
                assert "no more marketing email" in await response.text()
    assert (await _opted_out(app))[0] is True
    await app.reconciler.tick()
    changed = await app.store.events(kinds=[EventKind.RESOURCE_CHANGED], limit=100)
    assert changed[-1].resource == "customer://c1"
    assert changed[-1].payload["attributes"]["opted_out"] is True
    assert "marketing=off" in str(changed[-1].payload["detail"])


async def test_one_click_post_opts_out_and_answers_json(served: tuple[App, str]) -> None:
    """RFC 8058: POST ``List-Unsubscribe=One-Click`` to the link; twice is fine."""
    app, base = served
    url = f"{base}/unsubscribe?token={unsubscribe_token('c1', SECRET)}"
    async with aiohttp.ClientSession() as session:
        for _ in range(2):
            async with session.post(url, data={"List-Unsubscribe": "One-Click"}) as response:
                assert response.status == 200
                assert await response.json() == {"status": "unsubscribed"}
    assert (await _opted_out(app))[0] is True


@pytest.mark.parametrize(
    "token",
    [
        "",
        "garbage",
        unsubscribe_token("c1", b"another secret"),
        unsubscribe_token("c1", SECRET)[:-1] + "0",
        unsubscribe_token("c2", SECRET).split(".")[0]
        + "."
        + unsubscribe_token("c1", SECRET).split(".")[1],
        "!!!." + "0" * 32,
        '"><script>alert(1)</script>.' + "0" * 32,
        unsubscribe_token("c1", SECRET).split(".")[0] + ".é",
        unsubscribe_token("c1", SECRET).split(".")[0] + ".é" + "0" * 31,
    ],
)
async def test_a_bad_token_is_400_and_changes_nothing(served: tuple[App, str], token: str) -> None:
    """Missing, malformed, another secret's, tampered, another customer's, non-ASCII: 400."""
    app, base = served
    before = await _opted_out(app)
    async with aiohttp.ClientSession() as session:
        for method in ("GET", "POST"):
            async with session.request(method, f"{base}/unsubscribe", params={"token": token}) as r:
                assert r.status == 400
                assert await r.json() == {"error": "invalid unsubscribe token"}
    assert await _opted_out(app) == before
    assert before[0] is False


async def test_a_head_request_opts_nobody_out(served: tuple[App, str]) -> None:
    """HEAD, which link checkers send because HTTP calls it safe, is a 405 and changes nothing."""
    app, base = served
    async with aiohttp.ClientSession() as session:
        params = {"token": unsubscribe_token("c1", SECRET)}
        async with session.head(f"{base}/unsubscribe", params=params) as response:
            assert response.status == 405
    assert (await _opted_out(app))[0] is False


async def test_a_database_that_fails_is_a_503_to_try_later(served: tuple[App, str]) -> None:
    """When the customers table cannot be written the opt-out answers 503, never a 500."""
    app, base = served
    async with app.store.engine.begin() as connection:
        await connection.execute(text("ALTER TABLE customers RENAME TO customers_away"))
    async with aiohttp.ClientSession() as session:
        params = {"token": unsubscribe_token("c1", SECRET)}
        async with session.post(f"{base}/unsubscribe", params=params) as r:
            assert r.status == 503
            assert "customers_away" not in await r.text()
    async with app.store.engine.begin() as connection:
        await connection.execute(text("ALTER TABLE customers_away RENAME TO customers"))


async def test_a_genuine_token_for_an_unknown_customer_is_404(served: tuple[App, str]) -> None:
    """A customer deleted since the email: 404, nothing written."""
    _, base = served
    async with aiohttp.ClientSession() as session:
        params = {"token": unsubscribe_token("gone", SECRET)}
        async with session.post(f"{base}/unsubscribe", params=params) as response:
            assert response.status == 404


async def test_without_a_secret_there_is_no_route(
    make_app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No unsubscribe secret in the environment: the daemon serves no ``/unsubscribe``."""
    monkeypatch.delenv("UNSUBSCRIBE_SECRET", raising=False)
    app = await make_app()
    assert unsubscribe(app.settings, app) is None
