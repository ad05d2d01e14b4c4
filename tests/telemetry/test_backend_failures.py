"""The port's routes over a backend that fails: an outage is one warning, a bug its traceback.

Each route asks its backend's ``outage(exc)`` (`jarvis.telemetry.outages`): a line
is an outage, logged as one warning whose ``error`` is that line and answered as
a 503 (the page's forms: a redirect back saying it could not); None is a bug,
logged at error level with its traceback, and the webhook's is still the
middleware's 500. The client is told the exception's type at most, never its
text. The backend below is the injected boundary (a plain class implementing the
telemetry protocols, as in `test_http.py`); `test_port_outage_log.py` has the
real outages under a `jarvis run`.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import aiohttp
import pytest
from structlog.testing import capture_logs

from jarvis.mail import unsubscribe_token
from jarvis.model import Action, Event, KillSwitchState, RetryState
from jarvis.safety import Remaining
from jarvis.telemetry.http import HttpServer
from jarvis.telemetry.metrics import Metrics
from jarvis.telemetry.unsubscribe import Unsubscribe
from jarvis.telemetry.web.view import LeaderView, NotificationView, OverrideResult

pytestmark = pytest.mark.anyio

TOKEN: Final = "backend-failures-admin-token-0123"
SECRET: Final = b"unsubscribe-secret-for-tests"
LINE: Final = (
    "cannot reach PostgreSQL at db.internal:5432 (database jarvis): ConnectionRefusedError"
)
SAID: Final = "postgresql://jarvis:hunter2@db.internal:5432/jarvis refused"
"""The failure's own text, which no answer may carry."""
OUTAGE_OR_BUG: Final = pytest.mark.parametrize("line", [LINE, None], ids=["outage", "bug"])
"""Each test twice: the backend says its failure is an outage (in `LINE`), or a bug."""


@dataclass
class FailingBackend:
    """The page's, the webhook's and the opt-out's backend: every change and read the routes
    make raises `SAID`; `outage` says ``line`` of it (None: a bug)."""

    line: str | None

    def outage(self, exc: BaseException) -> str | None:
        assert str(exc) == SAID, exc
        return self.line

    def _fail(self) -> RuntimeError:
        return RuntimeError(SAID)

    async def killswitch_status(self) -> KillSwitchState:
        raise self._fail()

    async def set_killswitch(self, *, engaged: bool, actor: str, reason: str) -> KillSwitchState:
        raise self._fail()

    async def record_admin_request(
        self, *, method: str, path: str, remote: str, result: str, detail: str
    ) -> None:
        pass

    @property
    def overrides_enabled(self) -> bool:
        return True

    async def override(self, action: Action) -> OverrideResult:
        raise self._fail()

    async def leader(self) -> LeaderView | None:
        return None

    def budgets_left(self) -> Sequence[Remaining]:
        return []

    def notifications(self) -> Sequence[NotificationView] | None:
        return None

    def known_resources(self) -> Sequence[str]:
        return []

    async def quarantined(self) -> list[RetryState]:
        return []

    async def reset_retries(self, *, resource: str, actor: str) -> int:
        raise self._fail()

    async def recent_events(self, *, after_id: int | None, limit: int) -> Sequence[Event]:
        raise self._fail()

    async def escalations(self, *, limit: int) -> Sequence[Event]:
        return []

    async def receive(self, body: bytes, signature: str | None) -> tuple[int, dict[str, object]]:
        raise self._fail()

    async def aclose(self) -> None:
        pass

    async def opt_out(self, customer_id: str) -> bool:
        raise self._fail()


async def _ready() -> tuple[bool, dict[str, str]]:
    return True, {}


Serve = Callable[[str | None], Awaitable[str]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Start servers whose every backend is a `FailingBackend` saying ``line``; each is stopped
    afterwards."""
    started: list[HttpServer] = []

    async def start(line: str | None) -> str:
        backend = FailingBackend(line)
        server = HttpServer(
            host="127.0.0.1",
            port=0,
            metrics=Metrics(),
            healthy=lambda: (True, "ok"),
            ready=_ready,
            admin=backend,
            admin_token=TOKEN,
            page=backend,
            stripe_webhook=backend,
            unsubscribe=Unsubscribe(secret=SECRET, opt_out=backend.opt_out, outage=backend.outage),
        )
        await server.start()
        started.append(server)
        return f"http://127.0.0.1:{server.port}"

    yield start
    for server in started:
        await server.stop()


def said(line: MutableMapping[str, Any], outage: str | None) -> None:
    """``line`` logs an outage as one warning whose ``error`` is ``outage``, or (None) a bug
    at error level with its traceback."""
    if outage is None:
        assert line["log_level"] == "error", line
        assert line["exc_info"], line
        assert "error" not in line, line
    else:
        assert line["log_level"] == "warning", line
        assert line["error"] == outage, line
        assert "exc_info" not in line, line


def failures(logs: list[MutableMapping[str, Any]]) -> list[MutableMapping[str, Any]]:
    """What the routes logged, but the audit's info lines."""
    return [line for line in logs if line["log_level"] != "info"]


@OUTAGE_OR_BUG
async def test_a_webhook_whose_backend_is_away_is_a_503_and_one_warning(
    serve: Serve, line: str | None
) -> None:
    """An outage is a 503 (Stripe delivers again) and one warning; a bug stays the
    middleware's 500 with its traceback."""
    base = await serve(line)
    with capture_logs() as logs:
        async with (
            aiohttp.ClientSession() as client,
            client.post(f"{base}/webhooks/stripe", data=b"{}") as resp,
        ):
            answer = (resp.status, await resp.json())
    (logged,) = failures(logs)
    if line is None:
        assert answer == (500, {"error": "internal error (RuntimeError)"})
        assert logged["event"] == "http.handler_failed", logged
    else:
        assert answer == (503, {"outcome": "unavailable", "error": "unavailable"})
        assert logged["event"] == "stripe webhook not recorded", logged
    said(logged, line)


@OUTAGE_OR_BUG
async def test_an_unsubscribe_whose_table_is_away_is_one_warning(
    serve: Serve, line: str | None
) -> None:
    """Either way the opt-out is a 503 to try later, saying nothing of the failure; an outage
    logs one warning, a bug its traceback."""
    base = await serve(line)
    token = unsubscribe_token("c1", SECRET)
    with capture_logs() as logs:
        async with (
            aiohttp.ClientSession() as client,
            client.post(f"{base}/unsubscribe", params={"token": token}) as resp,
        ):
            answer = (resp.status, await resp.json())
    assert answer == (503, {"error": "unsubscribe unavailable; try the link again later"})
    (logged,) = failures(logs)
    assert (logged["event"], logged["customer"]) == ("customer.unsubscribe_failed", "c1")
    said(logged, line)


@OUTAGE_OR_BUG
async def test_the_pages_forms_and_feed_whose_backend_fails_log_why(
    serve: Serve, line: str | None
) -> None:
    """Each form goes back to the page saying the type of what failed, the feed is a 503
    saying as much, and each logs one warning with the backend's line for an outage, or its
    traceback for a bug; none says the failure's text."""
    base = await serve(line)
    forms = {
        "/ui/killswitch": {"action": "engage", "reason": "drill"},
        "/ui/retries/reset": {"resource": "sim://web"},
        "/ui/override": {"resource": "sim://web", "action": "restart"},
    }
    jar = aiohttp.CookieJar(unsafe=True)  # keeps the session cookie of 127.0.0.1
    async with aiohttp.ClientSession(cookie_jar=jar) as browser:
        async with browser.post(f"{base}/login", data={"token": TOKEN}) as resp:
            found = re.search(r'name="csrf" value="([^"]+)"', await resp.text())
        assert found is not None
        with capture_logs() as logs:
            for path, form in forms.items():
                data = {**form, "csrf": found.group(1)}
                async with browser.post(f"{base}{path}", data=data) as resp:
                    page = await resp.text()
                assert "the daemon could not do that right now (RuntimeError)" in page
                assert SAID not in page
            async with browser.get(f"{base}/ui/events") as resp:
                answer = (resp.status, await resp.json())
    assert answer == (503, {"error": "events unavailable (RuntimeError)"})
    logged = failures(logs)
    assert [(one["event"], one["doing"]) for one in logged] == [
        ("admin.backend_failed", "setting the kill switch"),
        ("admin.backend_failed", "resetting a quarantine"),
        ("admin.backend_failed", "queueing an override"),
        ("admin.backend_failed", "reading the events"),
    ]
    for one in logged:
        said(one, line)
