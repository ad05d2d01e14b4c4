"""`enrich`: a metric source's reading merged into what the providers observed."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import UTC, datetime

import pytest

from jarvis.actuators.base import ActuatorError, MetricReading
from jarvis.loop.observe import enrich
from jarvis.model import Health, ResourceRef, ResourceState

pytestmark = pytest.mark.anyio

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
WEB = "k8s://default/web"
API = "k8s://default/api"


class Source:
    """A metric source answering a fixed reading, or failing."""

    def __init__(self, values: Mapping[str, Mapping[str, float]], *, fail: bool = False) -> None:
        self._values = values
        self._fail = fail

    @property
    def name(self) -> str:
        return "prom"

    @property
    def services(self) -> Collection[str]:
        return (WEB, API)

    @property
    def metrics(self) -> frozenset[str]:
        return frozenset({"requests_per_minute", "error_rate"})

    async def read(self) -> MetricReading:
        if self._fail:
            raise ActuatorError("connection refused", code="unreachable")
        return MetricReading(values=self._values, problems=("error_rate: api is NaN",))

    async def aclose(self) -> None:
        return None


def state(uri: str, **metrics: float) -> ResourceState:
    return ResourceState(
        ref=ResourceRef.parse(uri), health=Health.HEALTHY, observed_at=NOW, metrics=metrics
    )


async def test_the_source_replaces_the_metrics_it_supplies_and_keeps_the_rest() -> None:
    """Supplied metrics replace the provider's; one with no answer is removed; CPU stays."""
    resources = {
        WEB: state(WEB, cpu_utilization=40.0, requests_per_minute=1.0),
        API: state(API, error_rate=0.9),
    }
    errors: dict[str, str] = {}
    source = Source({WEB: {"requests_per_minute": 600.0, "error_rate": 0.01}, API: {}})
    await enrich(resources, [source], 5.0, errors)
    assert resources[WEB].metrics == {
        "cpu_utilization": 40.0,
        "requests_per_minute": 600.0,
        "error_rate": 0.01,
    }
    assert resources[API].metrics == {}
    assert errors == {"prom": "error_rate: api is NaN"}


async def test_a_failing_source_leaves_its_metrics_missing_and_says_why() -> None:
    """Nothing decides on a number the operator chose another source for."""
    resources = {WEB: state(WEB, cpu_utilization=40.0, requests_per_minute=1.0)}
    errors: dict[str, str] = {}
    await enrich(resources, [Source({}, fail=True)], 5.0, errors)
    assert resources[WEB].metrics == {"cpu_utilization": 40.0}
    assert errors == {"prom": "unreachable: connection refused"}


async def test_a_service_no_provider_observed_is_not_invented() -> None:
    """Metrics alone do not make a resource: the source only enriches observed ones."""
    resources = {WEB: state(WEB)}
    await enrich(resources, [Source({API: {"error_rate": 0.5}})], 5.0, {})
    assert list(resources) == [WEB]
