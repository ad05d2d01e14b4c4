"""`enrich`: a metric source's reading (`read_source`) merged into what the providers
observed."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

import pytest

from jarvis.loop.observe import enrich, read_source
from jarvis.model import Health, ResourceRef, ResourceState
from tests.fakes import FakeSource

pytestmark = pytest.mark.anyio

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
WEB = "k8s://default/web"
API = "k8s://default/api"


def prometheus(values: Mapping[str, Mapping[str, float]], *, fail: bool = False) -> FakeSource:
    """A source of WEB's and API's requests and error rate, one of its queries unusable."""
    return FakeSource(values, (WEB, API), problems=("error_rate: api is NaN",), fail=fail)


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
    source = prometheus({WEB: {"requests_per_minute": 600.0, "error_rate": 0.01}, API: {}})
    enrich(resources, [await read_source(source, 5.0)], errors)
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
    enrich(resources, [await read_source(prometheus({}, fail=True), 5.0)], errors)
    assert resources[WEB].metrics == {"cpu_utilization": 40.0}
    assert errors == {"prom": "unreachable: connection refused"}


async def test_a_service_no_provider_observed_is_not_invented() -> None:
    """Metrics alone do not make a resource: the source only enriches observed ones."""
    resources = {WEB: state(WEB)}
    enrich(resources, [await read_source(prometheus({API: {"error_rate": 0.5}}), 5.0)], {})
    assert list(resources) == [WEB]
