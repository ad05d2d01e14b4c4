"""The endpoint sensor against real loopback HTTP and HTTPS servers."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from jarvis.actuators.probes.endpoints import EndpointSensor
from jarvis.config.endpoints import EndpointSettings
from jarvis.loop.clock import WallClock
from jarvis.model import Health, ResourceState
from tests.endpoints.conftest import CERT_DAYS, Server

pytestmark = pytest.mark.anyio


def _endpoint(url: str, **options: Any) -> EndpointSettings:
    options.setdefault("name", "api")
    return EndpointSettings(url=url, **options)  # type: ignore[arg-type]


async def _observe(*endpoints: EndpointSettings, times: int = 1) -> list[ResourceState]:
    sensor = EndpointSensor(endpoints, clock=WallClock(), concurrency=2)
    try:
        states: list[ResourceState] = []
        for _ in range(times):
            states = list(await sensor.observe())
        return states
    finally:
        await sensor.aclose()


async def test_an_endpoint_meeting_its_expectations_is_healthy(http_server: Server) -> None:
    """Status and body as expected: healthy, with its latency, status and masked target."""
    [state] = await _observe(_endpoint(http_server.url, expect_body="all systems go"))
    assert str(state.ref) == "endpoint://api"
    assert state.ref.kind == "endpoint"
    assert state.health is Health.HEALTHY
    assert state.attributes["status"] == 200
    assert state.attributes["failures"] == 0
    assert 0 < state.metrics["latency_ms"] < 5000
    assert "cert_days_left" not in state.attributes


async def test_a_status_mismatch_degrades_then_fails_after_the_threshold(
    http_server: Server,
) -> None:
    """A 503 where 200 is expected: degraded, then unhealthy at the third failure in a row."""
    http_server.behaviour.status = 503
    endpoint = _endpoint(http_server.url, failure_threshold=3)
    sensor = EndpointSensor([endpoint], clock=WallClock())
    try:
        seen = [(await sensor.observe())[0] for _ in range(3)]
        assert [s.health for s in seen] == [Health.DEGRADED, Health.DEGRADED, Health.UNHEALTHY]
        assert seen[-1].detail == "status 503, expected 200"
        assert seen[-1].attributes["failures"] == 3
        assert seen[-1].attributes["error"] == "Status"
        http_server.behaviour.status = 200
        [recovered] = await sensor.observe()
        assert recovered.health is Health.HEALTHY
        assert recovered.attributes["failures"] == 0
    finally:
        await sensor.aclose()


async def test_a_body_without_the_expected_text_fails(http_server: Server) -> None:
    """The right status with the wrong body is a failure naming the missing text."""
    http_server.behaviour.body = "maintenance"
    [state] = await _observe(
        _endpoint(http_server.url, expect_body="all systems go", failure_threshold=1)
    )
    assert state.health is Health.UNHEALTHY
    assert "body lacks 'all systems go'" in state.detail
    assert state.attributes["error"] == "Body"


async def test_a_slow_answer_times_out_and_reports_the_timeout_as_latency(
    http_server: Server,
) -> None:
    """No answer within the timeout: unhealthy, and the latency is at least the timeout."""
    http_server.behaviour.delay = 3.0
    [state] = await _observe(_endpoint(http_server.url, timeout_seconds=0.3, failure_threshold=1))
    assert state.health is Health.UNHEALTHY
    assert state.attributes["error"] == "Timeout"
    assert "no answer within 0.3 s" in state.detail
    assert state.metrics["latency_ms"] >= 300


async def test_a_closed_port_is_an_unhealthy_endpoint_not_a_failed_observe() -> None:
    """Nothing listening: the probe reports the connection error as the endpoint's health."""
    with socket.socket() as spare:
        spare.bind(("127.0.0.1", 0))
        port = spare.getsockname()[1]
    [state] = await _observe(_endpoint(f"http://127.0.0.1:{port}/", failure_threshold=1))
    assert state.health is Health.UNHEALTHY
    assert state.attributes["error"].startswith("Client")


async def test_a_refused_connection_is_described_without_a_memory_address() -> None:
    """aiohttp's message names its SSL context as ``<ssl.SSLContext object at 0x…>``: kept,
    the detail differed in every process, so each restart recorded a `resource.changed`."""
    with socket.socket() as spare:
        spare.bind(("127.0.0.1", 0))
        port = spare.getsockname()[1]
    [state] = await _observe(_endpoint(f"http://127.0.0.1:{port}/", failure_threshold=1))
    assert f"127.0.0.1:{port}" in state.detail
    assert " at 0x" not in state.detail, state.detail


async def test_https_reports_days_left_on_an_unverified_self_signed_certificate(
    https_server: Server,
) -> None:
    """With verification off, the certificate's days left are still read, and few days degrade."""
    [fine, expiring] = await _observe(
        _endpoint(https_server.url, name="a", verify_tls=False, min_cert_days=5),
        _endpoint(https_server.url, name="b", verify_tls=False, min_cert_days=30),
    )
    assert fine.health is Health.HEALTHY
    days = fine.attributes["cert_days_left"]
    assert CERT_DAYS - 1 < days <= CERT_DAYS
    assert expiring.health is Health.DEGRADED
    assert "TLS certificate expires in" in expiring.detail


async def test_an_expired_certificate_is_said_to_have_expired(
    expired_https_server: Server,
) -> None:
    """With verification off, a certificate that lapsed two days ago degrades the endpoint
    with words an operator reads right, not "expires in -2.0 days"."""
    url = expired_https_server.url
    [state] = await _observe(_endpoint(url, verify_tls=False, min_cert_days=0))
    assert state.health is Health.DEGRADED
    assert -3 < state.attributes["cert_days_left"] < -1
    assert state.detail.startswith("TLS certificate expired 2.0 days ago"), state.detail


async def test_https_with_verification_rejects_a_self_signed_certificate(
    https_server: Server,
) -> None:
    """verify_tls (the default) refuses a certificate no trusted authority signed."""
    [state] = await _observe(_endpoint(https_server.url, failure_threshold=1))
    assert state.health is Health.UNHEALTHY
    assert state.detail.startswith("TLS failed")
    assert https_server.behaviour.hits == 0


async def test_credentials_in_the_url_are_never_in_what_is_observed(http_server: Server) -> None:
    """A password and a query token reach the server but not the resource's record."""
    url = http_server.url.replace("http://", "http://probe:hunter22@") + "?token=s3cr3t-t0ken"
    [state] = await _observe(_endpoint(url))
    assert state.health is Health.HEALTHY
    record = repr(state)
    assert "hunter22" not in record
    assert "s3cr3t-t0ken" not in record
    assert state.attributes["target"].endswith("/healthz?token=%2A%2A%2A")


async def test_probes_run_concurrently_within_the_bound(http_server: Server) -> None:
    """Five slow endpoints with a bound of two: the server never sees more than two at once."""
    http_server.behaviour.delay = 0.3
    endpoints = [_endpoint(http_server.url, name=f"e{i}") for i in range(5)]
    states = await _observe(*endpoints)
    assert [s.health for s in states] == [Health.HEALTHY] * 5
    assert http_server.behaviour.hits == 5
    assert http_server.behaviour.most_in_flight == 2
