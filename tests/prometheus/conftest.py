"""Fixtures: an exporter the test drives and a real Prometheus scraping it every second."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.prometheus.server import Exporter, PrometheusServer

SERVICES = ["web", "api"]

#: The templates the tests configure: rates over a short window, since scrapes are 1 s apart.
QUERIES = {
    "requests_per_minute": (
        'sum by (service) (rate(http_requests_total{service=~"$services"}[5s])) * 60'
    ),
    "error_rate": (
        'sum by (service) (rate(http_requests_total{service=~"$services",code=~"5.."}[5s]))'
        ' / sum by (service) (rate(http_requests_total{service=~"$services"}[5s]))'
    ),
    "p95_latency_ms": (
        "histogram_quantile(0.95, sum by (service, le) "
        '(rate(http_request_duration_seconds_bucket{service=~"$services"}[5s]))) * 1000'
    ),
}


@pytest.fixture
def exporter() -> Iterator[Exporter]:
    served = Exporter(SERVICES)
    yield served
    served.close()


@pytest.fixture
def prometheus(exporter: Exporter) -> Iterator[PrometheusServer]:
    with PrometheusServer([exporter.port]) as server:
        yield server
