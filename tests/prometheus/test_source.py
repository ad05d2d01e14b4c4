"""The Prometheus source against a real Prometheus scraping an exporter the test drives."""

from __future__ import annotations

import re
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import anyio
import pytest
from aiohttp import web

from jarvis.actuators.base import ActuatorError, MetricReading
from jarvis.actuators.prometheus.source import PrometheusSource, services_regex
from jarvis.config.metrics import PrometheusSettings
from jarvis.loop.observe import enrich, read_source
from jarvis.model import Health, ResourceRef, ResourceState
from tests.loopback import free_port
from tests.prometheus.conftest import QUERIES
from tests.prometheus.server import Exporter, Load, PrometheusServer

pytestmark = pytest.mark.anyio

WEB = "k8s://default/web"
API = "k8s://default/api"
DEADLINE = 90.0

Values = Mapping[str, Mapping[str, float]]


def source_for(url: str, services: Mapping[str, str] | None = None) -> PrometheusSource:
    settings = PrometheusSettings.model_validate(
        {
            "url": url,
            "timeout_seconds": 10,
            "queries": QUERIES,
            "services": services or {WEB: "web", API: "api"},
        }
    )
    return PrometheusSource(settings)


async def wait_for(source: PrometheusSource, done: Callable[[Values], bool]) -> MetricReading:
    """Read until ``done`` holds (Prometheus needs a few scrapes to see a rate move)."""
    reading = MetricReading(values={})
    with anyio.move_on_after(DEADLINE):
        while True:
            reading = await source.read()
            if done(reading.values):
                return reading
            await anyio.sleep(0.5)
    raise AssertionError(f"no such reading within {DEADLINE:g}s; last: {reading}")


async def test_requests_per_minute_follow_the_exporters_counters(
    exporter: Exporter, prometheus: PrometheusServer
) -> None:
    """The rate Prometheus computes from the exporter's counter moves as the counter does."""
    source = source_for(prometheus.url)
    try:
        exporter.traffic("web", Load(per_second=10))
        calm = await wait_for(source, lambda v: 400 <= v[WEB].get("requests_per_minute", 0) <= 800)
        assert calm.values[API].get("requests_per_minute") == 0.0
        exporter.traffic("web", Load(per_second=100))
        await wait_for(source, lambda v: v[WEB].get("requests_per_minute", 0) > 3000)
    finally:
        await source.aclose()


async def test_error_rate_and_p95_come_from_their_own_templates(
    exporter: Exporter, prometheus: PrometheusServer
) -> None:
    """Half the requests failing reads as an error rate near 0.5, and latency as p95 in ms."""
    source = source_for(prometheus.url)
    try:
        exporter.traffic("web", Load(per_second=40, error_share=0.5, latency_seconds=0.2))
        reading = await wait_for(
            source,
            lambda v: (
                0.4 <= v[WEB].get("error_rate", 0) <= 0.6
                and 100 <= v[WEB].get("p95_latency_ms", 0) <= 250
            ),
        )
        # No requests at all: the error rate is 0/0, which is no measurement, and
        # not a failure either: an idle service would otherwise fail every tick.
        assert "error_rate" not in reading.values[API]
        assert reading.problems == ()
    finally:
        await source.aclose()


async def test_a_service_prometheus_has_never_seen_gets_no_metrics(
    exporter: Exporter, prometheus: PrometheusServer
) -> None:
    """A configured label with no series supplies nothing: absent, never zero."""
    ghost = "k8s://default/ghost"
    source = source_for(prometheus.url, {WEB: "web", ghost: "ghost"})
    try:
        exporter.traffic("web", Load(per_second=10))
        reading = await wait_for(source, lambda v: v[WEB].get("requests_per_minute", 0) > 0)
        assert reading.values[ghost] == {}
    finally:
        await source.aclose()


async def test_one_query_per_template_however_many_services(
    exporter: Exporter, prometheus: PrometheusServer
) -> None:
    """A read sends exactly one instant query per template, not one per service."""
    source = source_for(
        prometheus.url, {f"k8s://default/s{i}": f"s{i}" for i in range(20)} | {WEB: "web"}
    )
    try:
        before = queries_served(prometheus)
        await source.read()
        assert queries_served(prometheus) - before == len(QUERIES)
    finally:
        await source.aclose()
    del exporter


async def test_an_unreachable_server_is_an_error_not_a_reading() -> None:
    """With every query failing, the read raises and nothing is supplied."""
    source = source_for(f"http://127.0.0.1:{free_port()}")
    try:
        with pytest.raises(ActuatorError, match="prometheus"):
            await source.read()
    finally:
        await source.aclose()


def test_the_services_regex_matches_exactly_the_labels() -> None:
    """Label values are escaped for both PromQL strings and RE2."""
    pattern = services_regex(["web", "a.b", 'q"x'])
    unquoted = pattern.replace("\\\\", "\\").replace('\\"', '"')
    assert re.fullmatch(unquoted, "a.b")
    assert not re.fullmatch(unquoted, "axb")
    assert re.fullmatch(unquoted, 'q"x')
    assert not re.fullmatch(unquoted, "webx")


def queries_served(server: PrometheusServer) -> float:
    """Prometheus's own count of instant queries it answered (its /metrics)."""
    with urllib.request.urlopen(f"{server.url}/metrics", timeout=10) as reply:  # noqa: S310 - loopback
        text = reply.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith("prometheus_http_requests_total{") and 'handler="/api/v1/query"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


async def test_a_template_that_does_not_aggregate_is_ambiguous_and_supplies_nothing(
    exporter: Exporter, prometheus: PrometheusServer
) -> None:
    """Two series for one service (one per status code): no value, and the reason why."""
    settings = PrometheusSettings.model_validate(
        {
            "url": prometheus.url,
            "queries": {"requests_per_minute": 'http_requests_total{service=~"$services"}'},
            "services": {WEB: "web"},
        }
    )
    source = PrometheusSource(settings)
    try:
        with anyio.fail_after(DEADLINE):
            reading = await source.read()
            while not reading.problems:  # until the first scrape has landed
                await anyio.sleep(0.5)
                reading = await source.read()
        assert reading.values[WEB] == {}
        assert reading.problems == ("requests_per_minute: several series for service='web'",)
    finally:
        await source.aclose()
    del exporter


@asynccontextmanager
async def answering(
    handler: Callable[[web.Request], Awaitable[web.Response]],
) -> AsyncIterator[str]:
    """The URL of a loopback server whose query endpoint is ``handler``, for a test's length."""
    application = web.Application()
    application.router.add_post("/api/v1/query", handler)
    runner = web.AppRunner(application)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_a_proxy_refusing_the_request_is_one_line_naming_the_status() -> None:
    """A 401 page (not JSON) from a proxy in front of Prometheus: no metric, one clear line."""

    async def refuse(_request: web.Request) -> web.Response:
        return web.Response(status=401, text="<html><body>401 Authorization Required</body></html>")

    async with answering(refuse) as url:
        source = source_for(url)
        try:
            with pytest.raises(ActuatorError) as raised:
                await source.read()
        finally:
            await source.aclose()
    message = str(raised.value)
    assert "requests_per_minute: credentials refused (HTTP 401): <html>" in message
    assert "\n" not in message


async def test_one_hung_query_loses_only_its_metric_within_the_observe_limit() -> None:
    """A query hanging as long as the observe limit loses its own metric, not the others."""
    release = anyio.Event()

    async def answer(request: web.Request) -> web.Response:
        query = (await request.post())["query"]
        if "5.." in str(query):  # the error rate: never answered while the read lasts
            await release.wait()
        sample = {"metric": {"service": "web"}, "value": [1.0, "120"]}
        data = {"resultType": "vector", "result": [sample]}
        return web.json_response({"status": "success", "data": data})

    async with answering(answer) as url:
        settings = PrometheusSettings.model_validate(
            {
                "url": url,
                "timeout_seconds": 5,
                "queries": {k: QUERIES[k] for k in ("requests_per_minute", "error_rate")},
                "services": {WEB: "web"},
            }
        )
        source = PrometheusSource(settings)
        web_state = ResourceState(
            ref=ResourceRef.parse(WEB), health=Health.HEALTHY, observed_at=datetime.now(UTC)
        )
        resources = {WEB: web_state}
        errors: dict[str, str] = {}
        try:
            # Generous: the answered query must arrive within 90 % of it on a loaded machine.
            enrich(resources, [await read_source(source, 5.0)], errors)
        finally:
            release.set()
            await source.aclose()
    assert resources[WEB].metrics == {"requests_per_minute": 120.0}
    assert errors["prometheus"].startswith("error_rate: no answer within")


async def test_label_values_with_control_characters_still_make_valid_promql(
    exporter: Exporter, prometheus: PrometheusServer
) -> None:
    """A label with a line break, tab, quote or backslash leaves every query parseable."""
    odd = ["line\nbreak", "tab\there", 'qu"ote', "back\\slash", "cr\rlf", "nul\x00"]
    services = {WEB: "web"} | {f"k8s://default/odd{i}": label for i, label in enumerate(odd)}
    source = source_for(prometheus.url, services)
    try:
        exporter.traffic("web", Load(per_second=10))
        reading = await wait_for(source, lambda v: v[WEB].get("requests_per_minute", 0) > 0)
        assert reading.problems == ()
    finally:
        await source.aclose()


async def read_answering(answer: object) -> MetricReading:
    """What the source reads from a loopback server answering every query with ``answer``."""

    async def reply(_request: web.Request) -> web.Response:
        return web.json_response(answer)

    async with answering(reply) as url:
        source = source_for(url, services={WEB: "web"})
        try:
            return await source.read()
        finally:
            await source.aclose()


async def test_an_answer_whose_data_is_not_an_object_is_a_clear_error() -> None:
    """A 200 whose ``data`` is not an object is named as such, not an AttributeError."""
    with pytest.raises(ActuatorError, match="answered no data object"):
        await read_answering({"status": "success", "data": ["not", "an", "object"]})


async def test_series_that_are_not_objects_are_named_and_the_good_ones_still_count() -> None:
    """A null ``metric`` or a series that is not an object is skipped with a problem named."""
    series = [
        {"metric": None, "value": [1.0, "5"]},
        "not a series",
        {"metric": {"service": "web"}, "value": [1.0, "120"]},
    ]
    reading = await read_answering(
        {"status": "success", "data": {"resultType": "vector", "result": series}}
    )
    assert reading.values[WEB]["requests_per_minute"] == 120.0
    assert any("not a series object" in problem for problem in reading.problems), reading
