"""Endpoint probes through the real loop: SLO alerts once and resolves, heal reads served health.

Each app is built by the composition root from settings naming a loopback
server, on a real SQLite store, ticked by hand in virtual time (30 s apart);
only the probes' own round trips take real time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from jarvis.app import App, build_app
from jarvis.config import ConfigError, load_settings
from jarvis.loop.clock import VirtualClock
from jarvis.model import Event, EventKind
from jarvis.notify.alerts import changes_for
from tests.endpoints.conftest import Server

pytestmark = pytest.mark.anyio

SLOW, FAST = 0.3, 0.0
"""Seconds the server waits: 300 ms breaks a 100 ms p95, no wait meets it."""

MakeApp = Callable[..., Awaitable[App]]


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(datetime.now(UTC))


@pytest.fixture
async def make_app(sqlite_url: str, clock: VirtualClock) -> AsyncIterator[MakeApp]:
    apps: list[App] = []

    async def factory(**overrides: Any) -> App:
        overrides.setdefault("simulated", {"script": False})
        settings = load_settings(database_url=sqlite_url, **overrides)
        app = await build_app(settings, clock=clock, run_id=f"r{len(apps)}")
        apps.append(app)
        return app

    yield factory
    for app in apps:
        await app.aclose()


def _probes(server: Server, **endpoint: Any) -> dict[str, Any]:
    return {
        "endpoints": [{"name": "ai-dawg-api", "url": server.url, "cloud": "gcp", **endpoint}],
        "slos": [{"name": "cross-cloud", "p95_ms": 100, "window_seconds": 60, "min_samples": 2}],
    }


async def _ticks(app: App, clock: VirtualClock, server: Server, delays: list[float]) -> None:
    for delay in delays:
        server.behaviour.delay = delay
        await app.reconciler.tick()
        clock.advance(30)


async def _alerts(app: App) -> list[Event]:
    events = await app.store.events(kinds=[EventKind.ALERT], limit=100)
    return [e for e in events if str(e.payload.get("cause", "")).startswith("slo:")]


def _gauge(app: App, line: str) -> str:
    text = app.metrics.render()[0].decode()
    [value] = [row.rpartition(" ")[2] for row in text.splitlines() if row.startswith(line)]
    return value


async def test_a_slow_endpoint_breaks_its_slo_with_one_alert_and_recovery_resolves_it(
    make_app: MakeApp, clock: VirtualClock, http_server: Server
) -> None:
    """p95 over 100 ms raises one alert however long it lasts; back under, one resolution."""
    app = await make_app(probes=_probes(http_server))
    await _ticks(app, clock, http_server, [FAST, FAST])
    assert await _alerts(app) == []
    assert _gauge(app, 'jarvis_slo_ok{slo="cross-cloud"}') == "1.0"

    await _ticks(app, clock, http_server, [SLOW, SLOW, FAST])
    [fired] = await _alerts(app)
    assert fired.payload["cause"] == "slo:cross-cloud"
    assert fired.payload["severity"] == "warning"
    assert fired.payload["resolved"] is False
    assert fired.payload["p95_ms"] >= 300
    assert "SLO cross-cloud broken" in (fired.reason or "")
    assert "endpoint://ai-dawg-api" in (fired.reason or "")
    assert _gauge(app, 'jarvis_slo_ok{slo="cross-cloud"}') == "0.0"

    await _ticks(app, clock, http_server, [FAST, FAST])
    fired, resolved = await _alerts(app)
    assert resolved.payload["resolved"] is True
    assert _gauge(app, 'jarvis_slo_ok{slo="cross-cloud"}') == "1.0"
    [firing] = changes_for(fired)
    [resolving] = changes_for(resolved)
    assert firing.firing and not resolving.firing
    assert resolving.fingerprint == firing.fingerprint
    labels = 'cloud="gcp",endpoint="ai-dawg-api",region=""'
    assert _gauge(app, f"jarvis_endpoint_up{{{labels}}}") == "1.0"
    assert _gauge(app, f"jarvis_endpoint_latency_seconds_count{{{labels}}}") == "7.0"


async def test_an_endpoint_failing_fast_does_not_meet_its_slo(
    make_app: MakeApp, clock: VirtualClock, http_server: Server
) -> None:
    """A 503 in no time is not a fast answer: while the endpoint fails, a breach is not
    resolved; once it answers fast again, it is."""
    app = await make_app(probes=_probes(http_server))
    await _ticks(app, clock, http_server, [SLOW, SLOW])
    assert [e.payload["resolved"] for e in await _alerts(app)] == [False]

    http_server.behaviour.status = 503
    await _ticks(app, clock, http_server, [FAST, FAST, FAST])
    assert [e.payload["resolved"] for e in await _alerts(app)] == [False]
    assert _gauge(app, 'jarvis_slo_ok{slo="cross-cloud"}') == "0.0"

    http_server.behaviour.status = 200
    await _ticks(app, clock, http_server, [FAST, FAST])
    assert [e.payload["resolved"] for e in await _alerts(app)] == [False, True]
    assert _gauge(app, 'jarvis_slo_ok{slo="cross-cloud"}') == "1.0"


async def test_a_breach_outliving_a_restart_is_not_alerted_twice(
    make_app: MakeApp, clock: VirtualClock, http_server: Server
) -> None:
    """The open alert is read back at start; the samples are not, and the recovery resolves it."""
    first = await make_app(probes=_probes(http_server))
    await _ticks(first, clock, http_server, [SLOW, SLOW])
    assert len(await _alerts(first)) == 1
    await first.aclose()

    second = await make_app(probes=_probes(http_server))
    await _ticks(second, clock, http_server, [SLOW, SLOW, SLOW])
    assert len(await _alerts(second)) == 1
    await _ticks(second, clock, http_server, [FAST, FAST])
    fired, resolved = await _alerts(second)
    assert (fired.payload["resolved"], resolved.payload["resolved"]) == (False, True)


async def test_a_failing_endpoint_makes_heal_restart_the_service_it_serves(
    make_app: MakeApp, clock: VirtualClock, http_server: Server
) -> None:
    """Unhealthy after two failed probes: its service is restarted, never the endpoint."""
    http_server.behaviour.status = 503
    probes = _probes(http_server, serves="sim://ai-dawg-producer", failure_threshold=2)
    app = await make_app(probes=probes)
    await _ticks(app, clock, http_server, [FAST])
    assert await app.store.events(kinds=[EventKind.ACTION_APPLIED], limit=10) == []
    await _ticks(app, clock, http_server, [FAST])
    [applied] = await app.store.events(kinds=[EventKind.ACTION_APPLIED], limit=10)
    assert applied.resource == "sim://ai-dawg-producer"
    assert applied.action_kind == "restart"
    assert "endpoint://ai-dawg-api failing: status 503, expected 200" in (applied.reason or "")
    actions = await app.store.events(kinds=[EventKind.ACTION_PROPOSED], limit=100)
    assert all(not (e.resource or "").startswith("endpoint://") for e in actions)
    labels = 'cloud="gcp",endpoint="ai-dawg-api",region=""'
    assert _gauge(app, f"jarvis_endpoint_up{{{labels}}}") == "0.0"


async def test_no_allow_list_entry_can_name_an_endpoint(
    make_app: MakeApp, http_server: Server
) -> None:
    """Endpoints are observe-only: an allow-list entry for them is a configuration error."""
    allow = [{"provider": "endpoint", "resources": "*", "actions": ["*"]}]
    with pytest.raises(ConfigError, match=r"allowlist\.0\.provider: unknown provider 'endpoint'"):
        await make_app(probes=_probes(http_server), allowlist=allow)


async def test_restarts_that_leave_the_endpoint_failing_escalate(
    make_app: MakeApp, clock: VirtualClock, http_server: Server
) -> None:
    """The retry budget judges the service by its endpoint too: spent restarts page a human."""
    http_server.behaviour.status = 503
    probes = _probes(http_server, serves="sim://ai-dawg-producer", failure_threshold=1)
    app = await make_app(probes=probes)
    escalated: list[Event] = []
    for _ in range(20):
        await _ticks(app, clock, http_server, [FAST])
        escalated = await app.store.events(kinds=[EventKind.ACTION_ESCALATED], limit=10)
        if escalated:
            break
    [event] = escalated
    assert event.resource == "sim://ai-dawg-producer"
    applied = await app.store.events(kinds=[EventKind.ACTION_APPLIED], limit=10)
    assert len(applied) == 3


async def test_an_endpoint_this_replica_no_longer_observes_leaves_no_stale_up(
    make_app: MakeApp, clock: VirtualClock, http_server: Server
) -> None:
    """An endpoint whose shard went to another replica drops its jarvis_endpoint_up here,
    rather than reading its last probe beside the new owner's for as long as this runs."""
    app = await make_app(probes=_probes(http_server))
    await _ticks(app, clock, http_server, [FAST])
    labels = 'cloud="gcp",endpoint="ai-dawg-api",region=""'
    assert _gauge(app, f"jarvis_endpoint_up{{{labels}}}") == "1.0"

    app.reconciler.owns = lambda uri: not uri.startswith("endpoint://")  # another shard's now
    await _ticks(app, clock, http_server, [FAST])

    assert "jarvis_endpoint_up{" not in app.metrics.render()[0].decode()


async def test_an_slo_whose_probes_stop_arriving_leaves_no_stale_verdict(
    make_app: MakeApp, clock: VirtualClock, http_server: Server
) -> None:
    """An SLO whose window empties (its endpoint's shard went to another replica) drops
    its jarvis_slo_ok here, rather than reading its last verdict for as long as this runs."""
    app = await make_app(probes=_probes(http_server))
    await _ticks(app, clock, http_server, [FAST, FAST])
    assert _gauge(app, 'jarvis_slo_ok{slo="cross-cloud"}') == "1.0"

    app.reconciler.owns = lambda uri: not uri.startswith("endpoint://")  # another shard's now
    await _ticks(app, clock, http_server, [FAST, FAST, FAST])  # 90 s: past the 60 s window

    assert "jarvis_slo_ok{" not in app.metrics.render()[0].decode()
