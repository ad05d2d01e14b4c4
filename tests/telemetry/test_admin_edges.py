"""Admin API edge cases (issue 11, item 13), on a real HttpServer and a real store.

A hostile body is answered and audited; the actor of a flip is the
credential, not a body field; a secret pasted into a reason reaches neither
the event store nor the kill-switch backend.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from pydantic import SecretStr

from jarvis.config import Settings
from jarvis.config.probes import ProbeSettings
from jarvis.loop.admin import AdminService
from jarvis.loop.clock import WallClock
from jarvis.loop.killswitch import KillSwitch
from jarvis.model import EventKind
from jarvis.store import EventStore, MemoryKillSwitch, Redactor
from jarvis.telemetry.http import HttpServer
from jarvis.telemetry.metrics import Metrics
from tests.telemetry.test_hostile_requests import raw_request
from tests.telemetry.test_http import AUTH, TOKEN, Serve, admin_count, client, serve

__all__ = ["client", "serve"]  # fixtures, re-exported for pytest

READ_TOKEN = "r3ad-only-token-for-tests"
DB_PASSWORD = "pg-pa55word-xyz"


@pytest.mark.anyio
async def test_deeply_nested_body_is_a_400_and_audited(
    serve: Serve, client: aiohttp.ClientSession
) -> None:
    """100,000 nested brackets are a 400 naming the body, recorded like any other request."""
    served = await serve()
    headers = {**AUTH, "Content-Type": "application/json"}
    body = b"[" * 100_000 + b"]" * 100_000
    async with client.post(served.url("/v1/killswitch"), headers=headers, data=body) as resp:
        assert resp.status == 400
        assert (await resp.json())["error"] == "body: nested too deeply"
    assert [r.result for r in served.backend.requests] == ["bad_request"]
    assert admin_count(served.metrics, "POST", "bad_request") == 1


@pytest.mark.anyio
async def test_the_actor_is_the_credential_not_the_body(
    serve: Serve, client: aiohttp.ClientSession
) -> None:
    """A body naming its own actor is refused; a flip records the admin token's identity."""
    served = await serve()
    url = served.url("/v1/killswitch")
    spoof = {"engaged": True, "reason": "x", "actor": "ceo"}
    async with client.post(url, headers=AUTH, json=spoof) as resp:
        assert resp.status == 400
        assert (await resp.json())["error"].startswith("actor:")
    async with client.post(url, headers=AUTH, json={"engaged": True, "reason": "p1"}) as resp:
        assert resp.status == 200
        assert (await resp.json())["actor"] == "admin-token"
    assert served.backend.sets == [(True, "admin-token", "p1")]


FLIP = b'{"engaged": true, "reason": "drill"}'
UNSUPPORTED = "Content-Type: must be application/json (the body is a JSON object)"


@pytest.mark.anyio
@pytest.mark.parametrize(
    "content_type",
    ["application/x-www-form-urlencoded", "text/plain", "multipart/form-data; boundary=B"],
    ids=["form", "text", "multipart"],
)
async def test_a_flip_not_sent_as_json_is_a_415_and_audited(
    serve: Serve, client: aiohttp.ClientSession, content_type: str
) -> None:
    """A JSON body declared a form (`curl -d`) or text is a 415 naming application/json,
    recorded like any refused request, and flips nothing."""
    served = await serve()
    headers = {**AUTH, "Content-Type": content_type}
    async with client.post(served.url("/v1/killswitch"), headers=headers, data=FLIP) as resp:
        assert resp.status == 415
        assert resp.content_type == "application/json"
        assert resp.headers["Cache-Control"] == "no-store"
        assert await resp.json() == {"error": UNSUPPORTED}
    assert served.backend.sets == []
    assert [(r.result, r.detail) for r in served.backend.requests] == [("bad_request", UNSUPPORTED)]
    assert admin_count(served.metrics, "POST", "bad_request") == 1


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("token", "status", "result"),
    [(None, 401, "unauthorized"), (READ_TOKEN, 403, "forbidden")],
    ids=["no-token", "read-token"],
)
async def test_the_credential_is_refused_before_the_content_type(
    serve: Serve, client: aiohttp.ClientSession, token: str | None, status: int, result: str
) -> None:
    """A form without the admin token is refused for the token, as any other body is."""
    served = await serve(read_token=READ_TOKEN)
    headers = {"Content-Type": "text/plain"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    async with client.post(served.url("/v1/killswitch"), headers=headers, data=FLIP) as resp:
        assert resp.status == status
    assert [r.result for r in served.backend.requests] == [result]


@pytest.mark.anyio
@pytest.mark.parametrize(
    "content_type",
    ["application/json; charset=utf-8", "Application/JSON", None],
    ids=["charset", "any-case", "none"],
)
async def test_json_with_parameters_or_no_content_type_flips(
    serve: Serve, content_type: str | None
) -> None:
    """application/json with parameters, in any case, flips; so does a body that declares
    no type (as `requests.post(data=...)` and `http.client` send it)."""
    served = await serve()
    head = f"POST /v1/killswitch HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}"
    if content_type is not None:
        head += f"\r\nContent-Type: {content_type}"
    status, _ = await raw_request(served.server.port, head.encode(), FLIP)
    assert status == 200
    assert served.backend.sets == [(True, "admin-token", "drill")]


@pytest.mark.anyio
async def test_the_read_token_reads_and_changes_nothing(
    serve: Serve, client: aiohttp.ClientSession
) -> None:
    """GET with the read token answers; POST with it is a 403, audited, and flips nothing."""
    served = await serve(read_token=READ_TOKEN)
    url = served.url("/v1/killswitch")
    reader = {"Authorization": f"Bearer {READ_TOKEN}"}
    async with client.get(url, headers=reader) as resp:
        assert resp.status == 200
    async with client.post(url, headers=reader, json={"engaged": True, "reason": "x"}) as resp:
        assert resp.status == 403
    assert served.backend.sets == []
    assert [r.result for r in served.backend.requests] == ["ok", "forbidden"]


@pytest.fixture
async def store(tmp_path: object) -> AsyncIterator[EventStore]:
    settings = Settings(
        admin_token=SecretStr(TOKEN),
        read_token=SecretStr(READ_TOKEN),
        redis_url=f"redis://:{DB_PASSWORD}@127.0.0.1:6379/5",
    )
    opened = await EventStore.connect(
        f"sqlite+aiosqlite:///{tmp_path}/events.db", redactor=Redactor(settings.secrets)
    )
    yield opened
    await opened.aclose()


@pytest.mark.anyio
async def test_secrets_pasted_into_a_reason_never_reach_the_store(
    store: EventStore, client: aiohttp.ClientSession
) -> None:
    """Tokens and passwords in a reason are redacted in the flip, its event and the audit row."""
    backend = MemoryKillSwitch()
    switch = KillSwitch(backend, store, WallClock())
    server = HttpServer(
        host="127.0.0.1",
        port=0,
        metrics=Metrics(),
        healthy=lambda: (True, "ok"),
        ready=_ready,
        admin=AdminService(switch),
        admin_token=TOKEN,
        read_token=READ_TOKEN,
        redact=store.redactor.text,
    )
    await server.start()
    try:
        reason = f"oops {TOKEN} and {READ_TOKEN} and {DB_PASSWORD}"
        url = f"http://127.0.0.1:{server.port}/v1/killswitch"
        async with client.post(url, headers=AUTH, json={"engaged": True, "reason": reason}) as r:
            assert r.status == 200
    finally:
        await server.stop()
    stored = await backend.read()
    assert stored is not None
    assert stored.reason == "oops [redacted] and [redacted] and [redacted]"
    events = await store.events(limit=10)
    kinds = {e.kind for e in events}
    assert {EventKind.KILLSWITCH_ENGAGED, EventKind.ADMIN_REQUEST} <= kinds
    for event in events:
        text = repr(event)
        for secret in (TOKEN, READ_TOKEN, DB_PASSWORD):
            assert secret not in text


def test_every_secret_in_the_settings_is_known() -> None:
    """SecretStr values anywhere and passwords inside URLs are all redacted."""
    settings = Settings(
        admin_token=SecretStr("admin-secret-0123456789"),
        database_url="postgresql+asyncpg://jarvis:db%40secret@db:5432/jarvis",
        probes=ProbeSettings(postgres={"main": SecretStr("postgresql://u:probe-secret@h/db")}),
    )
    redact = Redactor(settings.secrets).text
    text = (
        "admin-secret-0123456789 db@secret db%40secret "
        "postgresql://u:probe-secret@h/db probe-secret"
    )
    assert "secret" not in redact(text).replace("[redacted]", "")


async def _ready() -> tuple[bool, dict[str, str]]:
    return True, {}
