"""HttpServer: the real aiohttp server on 127.0.0.1, spoken to by a real HTTP client.

The admin backend below is the injected boundary (a plain class that records
calls), not a mock of Jarvis's modules.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs

from jarvis.model import KillSwitchState
from jarvis.telemetry.audit import REFUSED_RECORDED_PER_MINUTE
from jarvis.telemetry.http import HttpServer
from jarvis.telemetry.metrics import Metrics

TOKEN = "s3cret-admin-token-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@dataclass
class AdminRequest:
    method: str
    path: str
    remote: str
    result: str
    detail: str


@dataclass
class RecordingBackend:
    """An in-memory kill switch that records every call made to it."""

    state: KillSwitchState = field(default_factory=lambda: KillSwitchState(engaged=False))
    requests: list[AdminRequest] = field(default_factory=list)
    sets: list[tuple[bool, str, str]] = field(default_factory=list)
    failure: Exception | None = None
    record_failure: Exception | None = None
    outage_line: str | None = None
    """What `outage` says of any failure: None, a bug (logged with its traceback)."""

    async def killswitch_status(self) -> KillSwitchState:
        if self.failure is not None:
            raise self.failure
        return self.state

    async def set_killswitch(self, *, engaged: bool, actor: str, reason: str) -> KillSwitchState:
        if self.failure is not None:
            raise self.failure
        self.sets.append((engaged, actor, reason))
        self.state = KillSwitchState(
            engaged=engaged, actor=actor, reason=reason, changed_at=datetime.now(UTC)
        )
        return self.state

    async def record_admin_request(
        self, *, method: str, path: str, remote: str, result: str, detail: str
    ) -> None:
        if self.record_failure is not None:
            raise self.record_failure
        self.requests.append(AdminRequest(method, path, remote, result, detail))

    def outage(self, exc: BaseException) -> str | None:
        return self.outage_line


@dataclass
class Probes:
    """What the loop would answer; tests flip these."""

    healthy: tuple[bool, str] = (True, "last tick finished 2 s ago")
    ready: tuple[bool, dict[str, str]] = (True, {"store": "ok", "killswitch": "ok"})
    ready_gate: asyncio.Event | None = None

    def health(self) -> tuple[bool, str]:
        return self.healthy

    async def readiness(self) -> tuple[bool, dict[str, str]]:
        if self.ready_gate is not None:
            await self.ready_gate.wait()
        return self.ready


@dataclass
class Served:
    server: HttpServer
    metrics: Metrics
    backend: RecordingBackend
    probes: Probes

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.port}{path}"


Serve = Callable[..., Awaitable[Served]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Start HttpServers on 127.0.0.1:0; every one started is stopped afterwards."""
    started: list[HttpServer] = []

    async def start(*, admin_token: str | None = TOKEN, **kwargs: Any) -> Served:
        metrics, backend, probes = Metrics(), RecordingBackend(), Probes()
        server = HttpServer(
            host="127.0.0.1",
            port=0,
            metrics=metrics,
            healthy=probes.health,
            ready=probes.readiness,
            admin=backend,
            admin_token=admin_token,
            **kwargs,
        )
        await server.start()
        started.append(server)
        return Served(server, metrics, backend, probes)

    yield start
    for server in started:
        await server.stop()


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def admin_count(metrics: Metrics, method: str, result: str) -> float:
    body, _ = metrics.render()
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            if sample.name == "jarvis_admin_requests_total" and sample.labels == {
                "method": method,
                "result": result,
            }:
                return sample.value
    raise AssertionError(f"no admin request series for {method} {result}")


@pytest.mark.anyio
async def test_port_zero_binds_a_free_port_and_stop_releases_it(
    serve: Serve, client: aiohttp.ClientSession
) -> None:
    """Port 0 binds a real free port; after stop the server no longer answers."""
    served = await serve()
    port = served.server.port
    assert port > 0
    async with client.get(served.url("/healthz")) as resp:
        assert resp.status == 200
    await served.server.stop()
    with pytest.raises(aiohttp.ClientConnectionError):
        await client.get(f"http://127.0.0.1:{port}/healthz")
    with pytest.raises(RuntimeError):
        _ = served.server.port


@pytest.mark.anyio
async def test_metrics_endpoint_serves_a_parseable_exposition(
    serve: Serve, client: aiohttp.ClientSession
) -> None:
    """GET /metrics returns the text exposition of this server's registry."""
    served = await serve()
    served.metrics.ticks.labels(outcome="ok").inc(4)
    async with client.get(served.url("/metrics")) as resp:
        assert resp.status == 200
        assert resp.content_type == "text/plain"
        text = await resp.text()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }
    assert samples[("jarvis_ticks_total", (("outcome", "ok"),))] == 4
    assert ("jarvis_killswitch_engaged", ()) in samples


@pytest.mark.anyio
async def test_healthz_follows_the_loop_verdict(
    serve: Serve, client: aiohttp.ClientSession
) -> None:
    """/healthz answers 200 while the loop is healthy and 503 with its detail when not."""
    served = await serve()
    async with client.get(served.url("/healthz")) as resp:
        assert resp.status == 200
        assert resp.content_type == "application/json"
        assert await resp.json() == {"status": "ok", "detail": "last tick finished 2 s ago"}

    served.probes.healthy = (False, "no tick finished in 95 s (3 intervals)")
    async with client.get(served.url("/healthz")) as resp:
        assert resp.status == 503
        body = await resp.json()
    assert body["detail"] == "no tick finished in 95 s (3 intervals)"
    assert body["status"] != "ok"


@pytest.mark.anyio
async def test_readyz_reports_each_check(serve: Serve, client: aiohttp.ClientSession) -> None:
    """/readyz answers 200 when every check passes and 503 with per-check details when not."""
    served = await serve()
    async with client.get(served.url("/readyz")) as resp:
        assert resp.status == 200
        assert (await resp.json())["checks"] == {"store": "ok", "killswitch": "ok"}

    served.probes.ready = (False, {"store": "connection refused", "killswitch": "ok"})
    async with client.get(served.url("/readyz"), headers=_bearer(TOKEN)) as resp:
        assert resp.status == 503
        assert resp.content_type == "application/json"
        body = await resp.json()
    assert body["checks"] == {"store": "connection refused", "killswitch": "ok"}


@pytest.mark.anyio
async def test_readyz_tells_why_only_to_a_caller_with_a_token(
    serve: Serve, client: aiohttp.ClientSession
) -> None:
    """The port also serves the public (/unsubscribe, Stripe's webhooks), and a failing
    check's words name the database's host, port, name and role: an anonymous probe
    learns which checks fail, a caller with the read or admin token also why."""
    served = await serve(read_token="reader-token")
    why = 'cannot reach PostgreSQL at db.internal:5432 (database jarvis): role "app" refused'
    served.probes.ready = (False, {"store": why, "killswitch": "ok"})
    async with client.get(served.url("/readyz")) as resp:
        assert resp.status == 503
        body = await resp.json()
    assert body["checks"] == {"store": "failing", "killswitch": "ok"}
    assert "db.internal" not in json.dumps(body)
    for token in ("reader-token", TOKEN):
        async with client.get(served.url("/readyz"), headers=_bearer(token)) as resp:
            assert resp.status == 503
            assert (await resp.json())["checks"]["store"] == why
    async with client.get(served.url("/readyz"), headers=_bearer("wrong")) as resp:
        assert (await resp.json())["checks"]["store"] == "failing"


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.anyio
async def test_readyz_that_hangs_answers_503(serve: Serve, client: aiohttp.ClientSession) -> None:
    """A readiness check that never answers turns into a 503 after the ready timeout."""
    served = await serve(ready_timeout=0.05)
    served.probes.ready_gate = asyncio.Event()  # never set: the store hangs
    async with client.get(served.url("/readyz")) as resp:
        assert resp.status == 503
        assert "did not answer" in (await resp.json())["detail"]


@pytest.mark.anyio
async def test_unknown_path_is_a_json_404(serve: Serve, client: aiohttp.ClientSession) -> None:
    """An unknown path answers 404 with a JSON body, not an HTML page."""
    served = await serve()
    async with client.get(served.url("/nope")) as resp:
        assert resp.status == 404
        assert resp.content_type == "application/json"
        assert (await resp.json())["path"] == "/nope"


@pytest.mark.anyio
@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_admin_without_configured_token_is_refused_and_recorded(
    serve: Serve, client: aiohttp.ClientSession, method: str
) -> None:
    """With no admin token configured every admin request is a 403, and is still recorded."""
    served = await serve(admin_token=None)
    body = {"engaged": True, "reason": "incident"}
    async with client.request(method, served.url("/v1/killswitch"), json=body) as resp:
        assert resp.status == 403
        assert resp.content_type == "application/json"
        assert (await resp.json())["error"] == "admin API disabled: set JARVIS_ADMIN_TOKEN"

    assert served.backend.sets == []
    (recorded,) = served.backend.requests
    assert (recorded.method, recorded.path, recorded.result) == (
        method,
        "/v1/killswitch",
        "forbidden",
    )
    assert recorded.remote == "127.0.0.1"
    assert admin_count(served.metrics, method, "forbidden") == 1


@pytest.mark.anyio
@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong-token"}, {"Authorization": f"Basic {TOKEN}"}],
    ids=["missing", "wrong", "not-bearer"],
)
async def test_admin_with_missing_or_wrong_token_is_401_and_recorded(
    serve: Serve, client: aiohttp.ClientSession, headers: dict[str, str]
) -> None:
    """A missing or wrong bearer token is a 401 with a Bearer challenge, recorded."""
    served = await serve()
    async with client.get(served.url("/v1/killswitch"), headers=headers) as resp:
        assert resp.status == 401
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        assert "error" in await resp.json()

    (recorded,) = served.backend.requests
    assert recorded.result == "unauthorized"
    assert "wrong-token" not in recorded.detail
    assert admin_count(served.metrics, "GET", "unauthorized") == 1


@pytest.mark.anyio
async def test_admin_get_returns_the_kill_switch_state(
    serve: Serve, client: aiohttp.ClientSession
) -> None:
    """GET with the right token returns the backend's kill-switch state."""
    served = await serve()
    changed = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    served.backend.state = KillSwitchState(True, "cli:alice", "bad deploy", changed)
    async with client.get(served.url("/v1/killswitch"), headers=AUTH) as resp:
        assert resp.status == 200
        assert resp.headers["Cache-Control"] == "no-store"
        body = await resp.json()
    assert body == {
        "engaged": True,
        "actor": "cli:alice",
        "reason": "bad deploy",
        "changed_at": "2025-01-02T03:04:05+00:00",
    }
    assert [r.result for r in served.backend.requests] == ["ok"]


@pytest.mark.anyio
async def test_admin_post_engages_then_releases(
    serve: Serve, client: aiohttp.ClientSession
) -> None:
    """POST engages with a reason, then releases; the actor is the admin token's identity."""
    served = await serve()
    url = served.url("/v1/killswitch")
    async with client.post(url, headers=AUTH, json={"engaged": True, "reason": "p1 incident"}) as r:
        assert r.status == 200
        engaged = await r.json()
    assert engaged["engaged"] is True
    assert engaged["actor"] == "admin-token"
    assert engaged["reason"] == "p1 incident"

    release = {"engaged": False}
    async with client.post(url, headers=AUTH, json=release) as r:
        assert r.status == 200
        assert (await r.json())["engaged"] is False

    assert served.backend.sets == [
        (True, "admin-token", "p1 incident"),
        (False, "admin-token", ""),
    ]
    assert [r.result for r in served.backend.requests] == ["ok", "ok"]
    assert "p1 incident" in served.backend.requests[0].detail
    assert admin_count(served.metrics, "POST", "ok") == 2


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("payload", "field_name"),
    [
        (b"{not json", "body"),
        (b"[true]", "body"),
        (b'{"engaged": "yes", "reason": "x"}', "engaged"),
        (b'{"reason": "x"}', "engaged"),
        (b'{"engaged": true}', "reason"),
        (b'{"engaged": true, "reason": "   "}', "reason"),
        (b'{"engaged": true, "reason": "' + b"x" * 501 + b'"}', "reason"),
        (b'{"engaged": false, "actor": "bob"}', "actor"),
        (b'{"engaged": false, "force": true}', "force"),
        (b'{"engaged": ' + b"1" * 5000 + b"}", "body"),
    ],
    ids=[
        "not-json",
        "not-object",
        "engaged-not-bool",
        "engaged-missing",
        "reason-missing",
        "reason-blank",
        "reason-too-long",
        "actor-given",
        "unknown-field",
        "number-too-long",
    ],
)
async def test_admin_malformed_body_is_400_naming_the_field(
    serve: Serve, client: aiohttp.ClientSession, payload: bytes, field_name: str
) -> None:
    """A malformed POST body is a 400 whose message names the offending field."""
    served = await serve()
    headers = {**AUTH, "Content-Type": "application/json"}
    async with client.post(served.url("/v1/killswitch"), headers=headers, data=payload) as resp:
        assert resp.status == 400
        assert resp.content_type == "application/json"
        error = (await resp.json())["error"]
    assert field_name in error
    assert served.backend.sets == []
    (recorded,) = served.backend.requests
    assert recorded.result == "bad_request"
    assert field_name in recorded.detail


@pytest.mark.anyio
async def test_admin_backend_failure_is_a_json_503(
    serve: Serve, client: aiohttp.ClientSession
) -> None:
    """A backend exception answers 503 with a JSON error and is recorded as an error."""
    served = await serve()
    served.backend.failure = ConnectionError("redis://user:pw@cache down")
    async with client.get(served.url("/v1/killswitch"), headers=AUTH) as resp:
        assert resp.status == 503
        assert resp.content_type == "application/json"
        error = (await resp.json())["error"]
    assert "ConnectionError" in error
    assert "pw@" not in error
    assert [r.result for r in served.backend.requests] == ["error"]
    assert admin_count(served.metrics, "GET", "error") == 1


@pytest.mark.anyio
async def test_admin_other_methods_are_405_and_recorded(
    serve: Serve, client: aiohttp.ClientSession
) -> None:
    """A DELETE on the kill switch is refused with 405 and still recorded."""
    served = await serve()
    async with client.delete(served.url("/v1/killswitch"), headers=AUTH) as resp:
        assert resp.status == 405
        assert resp.headers["Allow"] == "GET, POST"
    assert [(r.method, r.result) for r in served.backend.requests] == [("DELETE", "bad_request")]


@pytest.mark.anyio
async def test_token_never_appears_in_recorded_details(
    serve: Serve, client: aiohttp.ClientSession
) -> None:
    """Across refused and accepted requests the token is never recorded, even if pasted."""
    served = await serve()
    url = served.url("/v1/killswitch")
    near_miss = {"Authorization": f"Bearer {TOKEN}x"}
    async with client.get(url, headers=near_miss) as resp:
        assert resp.status == 401
    async with client.get(url, headers=AUTH) as resp:
        assert resp.status == 200
    async with client.post(url, headers=AUTH, json={"engaged": True, "reason": TOKEN}) as resp:
        assert resp.status == 200
    async with client.post(url, headers=AUTH, json={"engaged": "x", TOKEN: 1}) as resp:
        assert resp.status == 400

    recorded = served.backend.requests
    assert [r.result for r in recorded] == ["unauthorized", "ok", "ok", "bad_request"]
    for request in recorded:
        assert TOKEN not in request.detail
        assert TOKEN not in request.path
    assert "[redacted]" in recorded[2].detail


@pytest.mark.anyio
async def test_two_servers_coexist_in_one_process(
    serve: Serve, client: aiohttp.ClientSession
) -> None:
    """Two servers with their own Metrics run side by side on different ports."""
    first, second = await serve(), await serve()
    assert first.server.port != second.server.port
    first.metrics.escalations.inc()
    async with client.get(second.url("/metrics")) as resp:
        text = await resp.text()
    values = {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}
    assert values["jarvis_escalations_total"] == 0


@pytest.mark.anyio
async def test_admin_without_backend_is_refused(client: aiohttp.ClientSession) -> None:
    """A token without a kill-switch backend still refuses admin requests with 403 JSON."""
    metrics = Metrics()
    probes = Probes()
    server = HttpServer(
        host="127.0.0.1",
        port=0,
        metrics=metrics,
        healthy=probes.health,
        ready=probes.readiness,
        admin=None,
        admin_token=TOKEN,
    )
    await server.start()
    try:
        url = f"http://127.0.0.1:{server.port}/v1/killswitch"
        async with client.get(url, headers=AUTH) as resp:
            assert resp.status == 403
            assert "no kill-switch backend" in (await resp.json())["error"]
    finally:
        await server.stop()
    assert admin_count(metrics, "GET", "forbidden") == 1


@pytest.mark.anyio
async def test_a_flood_of_refused_requests_does_not_grow_the_event_log_with_it(
    serve: Serve, client: aiohttp.ClientSession
) -> None:
    """Anyone who reaches the port can send requests without a token, and each refused one
    was an `admin.request` event: a client could grow the database at request rate. Refused
    requests are recorded one by one up to a limit a minute, then once more to say the rest
    are only counted (`jarvis_admin_requests_total` counts every one); requests with a valid
    token are always recorded."""
    served = await serve()
    flood = 3 * REFUSED_RECORDED_PER_MINUTE
    for _ in range(flood):
        async with client.get(served.url("/v1/killswitch")) as resp:
            assert resp.status == 401
    async with client.get(served.url("/v1/killswitch"), headers=_bearer(TOKEN)) as resp:
        assert resp.status == 200

    refused = [r for r in served.backend.requests if r.result == "unauthorized"]
    assert len(refused) == REFUSED_RECORDED_PER_MINUTE
    [notice] = [r for r in served.backend.requests if r.result == "suppressed"]
    assert "counted in jarvis_admin_requests_total" in notice.detail
    assert served.backend.requests[-1].result == "ok"
    assert admin_count(served.metrics, "GET", "unauthorized") == flood


@pytest.mark.anyio
@pytest.mark.parametrize("outage", ["SQLite database /x/jarvis.db is away", None])
async def test_an_audit_row_lost_to_an_outage_is_one_warning_line(
    serve: Serve, client: aiohttp.ClientSession, outage: str | None
) -> None:
    """A request whose audit row the store did not take is answered all the same; the log
    says why in the backend's one line when it is an outage, with the traceback otherwise."""
    served = await serve()
    served.backend.record_failure = RuntimeError("the store went away")
    served.backend.outage_line = outage
    with capture_logs() as logs:
        async with client.get(served.url("/v1/killswitch"), headers=AUTH) as resp:
            assert resp.status == 200
    (failed,) = [line for line in logs if line["event"] == "admin.record_failed"]
    if outage is None:
        assert failed["log_level"] == "error" and failed["exc_info"] is True
    else:
        assert failed["log_level"] == "warning" and failed["error"] == outage
        assert "exc_info" not in failed
