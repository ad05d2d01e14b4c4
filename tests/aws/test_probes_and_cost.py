"""Dependency probes (real Postgres, Redis, S3 on moto) and Cost Explorer spend."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import urllib.request
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import anyio
import boto3
import pytest

from jarvis.actuators.aws.cost import CostActuator
from jarvis.actuators.aws.ecs import EcsActuator, aws_actuators
from jarvis.actuators.aws.s3probe import s3_probes
from jarvis.actuators.base import Actuator, ActuatorError
from jarvis.actuators.probes.dependencies import ProbeSensor
from jarvis.config.aws import AwsSettings
from jarvis.config.probes import ProbeSettings
from jarvis.model import Health, ResourceState
from tests.aws.conftest import FixedClock, MakeAws, MakeProbes

pytestmark = pytest.mark.anyio


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_probes_report_reachable_and_unreachable_dependencies(
    make_probes: MakeProbes, session: boto3.Session, moto: str, pg_url: str, redis_url: str
) -> None:
    """Reachable Postgres, Redis and S3 are healthy; a closed port and a missing bucket are not."""
    s3 = session.client("s3", endpoint_url=moto)
    s3.create_bucket(Bucket="media")
    s3.put_object(Bucket="media", Key="jarvis/canary.txt", Body=b"ok")
    s3.create_bucket(Bucket="empty")
    s3.close()
    dead = f"postgresql://postgres@127.0.0.1:{_closed_port()}/postgres"
    probes = {
        "postgres": {"main": pg_url, "dead": dead},
        "redis": {"cache": redis_url},
        "s3": [{"bucket": "media"}, {"bucket": "empty"}, {"bucket": "ghost"}],
    }
    sensor = make_probes(**probes)
    assert not isinstance(sensor, Actuator)
    states = {str(s.ref): s for s in await sensor.observe()}

    assert {uri: s.health for uri, s in states.items()} == {
        "probe://postgres/dead": Health.UNHEALTHY,
        "probe://postgres/main": Health.HEALTHY,
        "probe://redis/cache": Health.HEALTHY,
        "probe://s3/empty": Health.UNHEALTHY,
        "probe://s3/ghost": Health.UNHEALTHY,
        "probe://s3/media": Health.HEALTHY,
    }
    assert states["probe://s3/empty"].attributes["error"] == "HTTP404"
    assert states["probe://s3/ghost"].attributes["error"] in {"404", "NoSuchBucket"}
    assert states["probe://postgres/main"].ref.kind == "probe"
    assert "latency_ms" in states["probe://redis/cache"].metrics
    assert "postgres@" not in states["probe://postgres/main"].attributes["target"]


def _post_cost(moto: str, results: list[dict[str, Any]]) -> None:
    request = urllib.request.Request(  # noqa: S310 - a loopback http URL
        f"{moto}/moto-api/static/ce/cost-and-usage-results",
        data=json.dumps({"results": results}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback URL
        assert response.status == 201


def _group(service: str, amount: str) -> dict[str, Any]:
    return {"Keys": [service], "Metrics": {"UnblendedCost": {"Amount": amount, "Unit": "USD"}}}


async def test_cost_is_read_once_an_hour_and_forecast_to_month_end(
    moto: str, session: boto3.Session
) -> None:
    """Month-to-date spend by service is cached for an hour and extrapolated to month end."""
    _post_cost(
        moto,
        [
            {
                "ResultsByTime": [
                    {
                        "TimePeriod": {"Start": "2025-04-01", "End": "2025-04-11"},
                        "Total": {},
                        "Groups": [
                            _group("Amazon Elastic Container Service", "60.0"),
                            _group("Amazon Simple Storage Service", "40.0"),
                        ],
                        "Estimated": True,
                    }
                ]
            }
        ],
    )
    clock = FixedClock(datetime(2025, 4, 11, 0, 0, tzinfo=UTC))
    settings = AwsSettings(endpoint_url=moto, cost=True)
    built = aws_actuators(settings, clock=clock, session=session)
    cost = built[-1]
    assert isinstance(cost, CostActuator)
    try:
        (first,) = await cost.observe()
        clock.advance(1800)
        (cached,) = await cost.observe()
        calls_within_the_hour = built[0].calls.snapshot()  # type: ignore[attr-defined]
        clock.advance(1801)
        await cost.observe()
        calls_after = built[0].calls.snapshot()  # type: ignore[attr-defined]
    finally:
        for actuator in built:
            await actuator.aclose()

    assert str(first.ref) == "cost://aws"
    assert first.metrics == {"month_to_date_usd": 100.0, "forecast_month_end_usd": 300.0}
    assert first.attributes["by_service_usd"] == {
        "Amazon Elastic Container Service": 60.0,
        "Amazon Simple Storage Service": 40.0,
    }
    assert first.attributes["estimated"] is True
    assert cached is first
    assert calls_within_the_hour == {"ce:GetCostAndUsage": 1}
    assert calls_after == {"ce:GetCostAndUsage": 2}


@pytest.mark.parametrize(
    ("now", "total", "period_end", "forecast"),
    [
        # The 1st: Cost Explorer is asked for the 1st alone (End must follow Start),
        # and its figures so far stand for the one day.
        (datetime(2025, 4, 1, 10, 0, tzinfo=UTC), "10.0", "2025-04-02", 300.0),
        # Mid-month, mid-day: 14 whole days asked for (End, today, is exclusive),
        # not the 14.5 elapsed.
        (datetime(2025, 4, 15, 12, 0, tzinfo=UTC), "140.0", "2025-04-15", 300.0),
        # The last hour of a 31-day month: 30 whole days, one day's share still to come.
        (datetime(2025, 3, 31, 23, 0, tzinfo=UTC), "300.0", "2025-03-31", 310.0),
        # February's last evening: 27 whole days of 28.
        (datetime(2025, 2, 28, 18, 0, tzinfo=UTC), "270.0", "2025-02-28", 280.0),
        # Midnight of the 16th of a 31-day month: 15 days, the same either way.
        (datetime(2025, 1, 16, 0, 0, tzinfo=UTC), "150.0", "2025-01-16", 310.0),
    ],
)
async def test_the_forecast_divides_by_the_days_cost_explorer_was_asked_for(
    moto: str, session: boto3.Session, now: datetime, total: str, period_end: str, forecast: float
) -> None:
    """The month-end forecast is the spend over the whole days asked of Cost Explorer (the
    day in progress is not among them) times the days in the month, to the cent."""
    start = now.date().replace(day=1).isoformat()
    _post_cost(
        moto,
        [
            {
                "ResultsByTime": [
                    {
                        "TimePeriod": {"Start": start, "End": period_end},
                        "Total": {},
                        "Groups": [_group("Amazon Elastic Container Service", total)],
                        "Estimated": True,
                    }
                ]
            }
        ],
    )
    settings = AwsSettings(endpoint_url=moto, cost=True)
    built = aws_actuators(settings, clock=FixedClock(now), session=session)
    try:
        (state,) = await built[-1].observe()
    finally:
        for actuator in built:
            await actuator.aclose()

    assert state.metrics == {"month_to_date_usd": float(total), "forecast_month_end_usd": forecast}
    assert (state.attributes["period_start"], state.attributes["period_end"]) == (
        start,
        period_end,
    )


async def test_unreachable_cost_explorer_fails_observe_as_temporary(
    session: boto3.Session,
) -> None:
    """With no cached answer, an unreachable Cost Explorer fails observe as temporary."""
    settings = AwsSettings(
        endpoint_url=f"http://127.0.0.1:{_closed_port()}", cost=True, max_attempts=1
    )
    built = aws_actuators(settings, clock=FixedClock(), session=session)
    try:
        with pytest.raises(ActuatorError) as caught:
            await built[-1].observe()
    finally:
        for actuator in built:
            await actuator.aclose()

    assert caught.value.code == "ConnectionError"


GetAnswer = Callable[[asyncio.StreamWriter], Awaitable[None]]


async def _probe_fake_s3(make_aws: MakeAws, clock: FixedClock, get: GetAnswer) -> ResourceState:
    """One S3 probe against a loopback "S3" whose HeadBucket succeeds and whose presigned
    GET is answered by ``get``; one request per connection."""

    handlers: list[tuple[asyncio.Task[Any], asyncio.StreamWriter]] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.append((task, writer))
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            request = await reader.readuntil(b"\r\n\r\n")
            if request.startswith(b"HEAD "):
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            else:
                await get(writer)
            await writer.drain()
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        ecs = make_aws(endpoint_url=f"http://127.0.0.1:{port}")[0]
        assert isinstance(ecs, EcsActuator)
        settings = ProbeSettings.model_validate({"s3": [{"bucket": "media"}]})
        [probe] = s3_probes(
            settings, s3=ecs.clients.s3, calls=ecs.calls, limiter=anyio.CapacityLimiter(1)
        )
        sensor = ProbeSensor([probe], clock=clock, timeout=10)
        [state] = await sensor.observe()
        return state
    finally:
        server.close()
        for _, writer in handlers:  # a connection the client left open ends here
            writer.close()
        await asyncio.gather(*(task for task, _ in handlers), return_exceptions=True)
        await server.wait_closed()


async def test_a_garbled_canary_answer_is_described_without_the_presigned_signature(
    make_aws: MakeAws, clock: FixedClock
) -> None:
    """The HTTP client quotes the presigned URL in its error: its signature, key id and
    token must not reach the probe's detail."""

    async def garbled(writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: many\r\n\r\nok")

    state = await _probe_fake_s3(make_aws, clock, garbled)
    assert state.health is Health.UNHEALTHY
    assert "Content-Length" in state.detail
    assert "X-Amz-Signature=" in state.detail  # the key is named, its value is not
    assert "X-Amz-Signature=%2A%2A%2A" in state.detail
    assert "testing" not in state.detail  # the access key id in X-Amz-Credential


async def test_a_canary_object_without_end_is_read_only_so_far(
    make_aws: MakeAws, clock: FixedClock
) -> None:
    """A canary key naming a huge object (here one without end) is not downloaded whole:
    the GET answered 200, so the probe is healthy, long before its timeout."""

    async def endless(writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"x" * 65536
        while not writer.is_closing():
            writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            await writer.drain()
            await asyncio.sleep(0.01)

    state = await _probe_fake_s3(make_aws, clock, endless)
    assert state.health is Health.HEALTHY, state.detail
