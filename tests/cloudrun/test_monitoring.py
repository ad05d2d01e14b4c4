"""The Cloud Monitoring source: built-in PromQL templates on Cloud Run's series, and its auth.

Cloud Run's series come from `CloudRunExporter`, scraped every second by a real
/usr/bin/prometheus, queried through `GoogleFront` (Google's token endpoint and
bearer check) with google-auth's application-default chain reading a
service-account key file, as a daemon on GCP would.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import pytest

from jarvis.actuators.base import ActuatorError, MetricSource
from jarvis.actuators.cloudrun.monitoring import TEMPLATES
from jarvis.actuators.prometheus.source import PrometheusSource
from jarvis.config import ConfigError, load_settings
from jarvis.loop.observe import enrich, read_source
from jarvis.model import Health, Metric, Replicas, ResourceRef, ResourceState
from jarvis.providers import build_metric_sources, check_allowlist
from tests.cli.conftest import Jarvis, jarvis  # noqa: F401 - the fixture
from tests.cloudrun.conftest import PROJECT, REGION
from tests.cloudrun.google_front import GoogleFront
from tests.cloudrun.monitoring_exporter import CloudRunExporter, Traffic

pytestmark = pytest.mark.anyio

API = f"cloudrun://{PROJECT}/{REGION}/api"
WORKER = f"cloudrun://{PROJECT}/{REGION}/worker"
DEADLINE = 90.0


def settings_for(url: str, **extra: object) -> dict[str, Any]:
    return {
        "cloudrun": {
            "project": PROJECT,
            "region": REGION,
            "services": ["api", "worker"],
            "credentials": "anonymous",
            "api_endpoint": "http://127.0.0.1:9",
        },
        "metrics": {"cloud_monitoring": {"url": url, "window": "5s", **extra}},
    }


@pytest.fixture
async def source(google: GoogleFront) -> AsyncIterator[PrometheusSource]:
    (built,) = build_metric_sources(load_settings(**settings_for(google.monitoring_url)))
    assert isinstance(built, PrometheusSource)
    yield built
    await built.aclose()


async def seen(
    source: MetricSource, done: Callable[[Mapping[str, Mapping[str, float]]], bool]
) -> Mapping[str, Mapping[str, float]]:
    """Read until ``done`` holds (Prometheus needs a few scrapes to see a change)."""
    values: Mapping[str, Mapping[str, float]] = {}
    with anyio.move_on_after(DEADLINE):
        while True:
            values = (await source.read()).values
            if done(values):
                return values
            await anyio.sleep(0.5)
    raise AssertionError(f"Cloud Monitoring never showed the expected values; last {values}")


def cloudrun_state(uri: str) -> ResourceState:
    ref = ResourceRef.parse(uri)
    return ResourceState(
        ref=ref,
        health=Health.HEALTHY,
        observed_at=datetime(2026, 1, 1, tzinfo=UTC),
        replicas=Replicas(desired=1, running=1, min=1, max=10),
    )


async def test_every_cloud_run_metric_reads_from_the_built_in_templates(
    adc: Path, google: GoogleFront, exporter: CloudRunExporter, source: PrometheusSource
) -> None:
    """Requests, 5xx share, p95, CPU and live instances per service, behind one bearer token."""
    exporter.traffic(
        "api",
        Traffic(
            per_second=20,
            error_share=0.25,
            latency_ms=80,
            instances=3,
            cpu=0.5,
            revision="api-00001-abc",
        ),
    )
    values = await seen(
        source,
        lambda v: (
            1000 <= v[API].get("requests_per_minute", 0) <= 1400 and v[API].get("instances") == 3
        ),
    )
    api = values[API]
    assert 0.2 <= api["error_rate"] <= 0.3
    assert 50 < api["p95_latency_ms"] <= 100  # inside the (50, 100] ms bucket
    assert api["cpu_utilization"] == pytest.approx(50)
    worker = values[WORKER]
    assert worker["requests_per_minute"] == 0
    assert "error_rate" not in worker  # 0/0 with no traffic: no measurement, not zero
    assert google.token_requests == 1  # one token, reused while it is valid


async def test_a_missing_instance_count_leaves_the_providers_count_and_the_metric_absent(
    adc: Path, exporter: CloudRunExporter, source: PrometheusSource
) -> None:
    """No instance_count series: running stays what the provider said; instances is absent."""
    exporter.traffic("api", Traffic(per_second=5, instances=-1))
    await seen(source, lambda v: v[API].get("requests_per_minute", 0) > 0)
    resources = {API: cloudrun_state(API)}
    errors: dict[str, str] = {}
    enrich(resources, [await read_source(source, 30)], errors)
    state = resources[API]
    assert Metric.INSTANCES not in state.metrics
    assert state.replicas is not None and state.replicas.running == 1
    assert state.metrics[Metric.REQUESTS_PER_MINUTE] > 0


async def test_a_live_instance_count_replaces_replicas_running(
    adc: Path, exporter: CloudRunExporter, source: PrometheusSource
) -> None:
    """Cloud Run's instance_count (active and idle) becomes ``replicas.running``."""
    exporter.traffic("api", Traffic(per_second=5, instances=4))
    await seen(source, lambda v: v[API].get("instances") == 4)
    resources = {API: cloudrun_state(API)}
    enrich(resources, [await read_source(source, 30)], {})
    replicas = resources[API].replicas
    assert replicas == Replicas(desired=1, running=4, min=1, max=10)


async def test_no_application_default_credentials_is_one_clear_line(
    google: GoogleFront, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: PrometheusSource
) -> None:
    """A key file that is not there: an ``auth`` error naming it, recorded, no traceback."""
    missing = tmp_path / "nowhere.json"
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(missing))
    with pytest.raises(ActuatorError) as raised:
        await source.read()
    assert raised.value.code == "auth"
    assert str(raised.value).startswith("cloud_monitoring: no application-default credentials (")
    assert str(missing) in str(raised.value) and "\n" not in str(raised.value)
    resources = {API: cloudrun_state(API)}
    errors: dict[str, str] = {}
    enrich(resources, [await read_source(source, 30)], errors)
    assert errors["cloud_monitoring"].startswith("auth: cloud_monitoring: no application-default")
    assert google.token_requests == 0


async def test_a_key_the_token_endpoint_rejects_is_one_clear_line(
    adc: Path, google: GoogleFront, source: PrometheusSource
) -> None:
    """The token endpoint refuses the grant: ``auth`` with Google's reason, no query sent."""
    google.keys.clear()  # the key was deleted on Google's side
    with pytest.raises(ActuatorError) as raised:
        await source.read()
    assert raised.value.code == "auth"
    message = str(raised.value)
    assert message.startswith("cloud_monitoring: could not get an access token (")
    assert "Invalid JWT Signature" in message and "\n" not in message


@pytest.mark.parametrize(
    ("refuse", "expected"),
    [
        ("revoke", "credentials refused (HTTP 401): UNAUTHENTICATED Request had invalid"),
        ("deny", "credentials refused (HTTP 403): PERMISSION_DENIED Permission monitoring"),
    ],
)
async def test_a_refused_token_is_one_line_per_query_not_a_traceback(
    adc: Path, google: GoogleFront, source: PrometheusSource, refuse: str, expected: str
) -> None:
    """Cloud Monitoring refusing the token (revoked, or no permission): no metric, a clear line."""
    await source.read()
    if refuse == "revoke":
        google.revoke()
    else:
        google.denied = True
    resources = {API: cloudrun_state(API)}
    errors: dict[str, str] = {}
    enrich(resources, [await read_source(source, 30)], errors)
    assert not set(resources[API].metrics) & set(TEMPLATES)
    line = errors["cloud_monitoring"]
    assert line.startswith("unreachable: cloud_monitoring: ") and "\n" not in line
    assert f"requests_per_minute: {expected}" in line


def test_cloud_monitoring_needs_the_cloudrun_section() -> None:
    """Without [cloudrun] there are no services to read: start-up stops naming the key."""
    values = settings_for("http://127.0.0.1:9")
    del values["cloudrun"]
    with pytest.raises(ConfigError, match=r"metrics\.cloud_monitoring: reads the services of"):
        check_allowlist(load_settings(**values))


def test_anonymous_needs_a_url() -> None:
    """Google answers anonymous queries with 401: refused at load, not every tick."""
    values = settings_for("http://127.0.0.1:9")
    values["metrics"] = {"cloud_monitoring": {"credentials": "anonymous"}}
    with pytest.raises(ConfigError, match="anonymous' requires url"):
        load_settings(**values)


def test_default_url_and_templates_name_the_project_region_and_services() -> None:
    """The real endpoint of the project, Cloud Monitoring's PromQL names, filled-in labels."""
    values = settings_for("http://127.0.0.1:9")
    values["metrics"] = {"cloud_monitoring": {}}
    (source,) = build_metric_sources(load_settings(**values))
    assert isinstance(source, PrometheusSource)
    assert source.name == "cloud_monitoring"
    assert source.url == (
        f"https://monitoring.googleapis.com/v1/projects/{PROJECT}/location/global/prometheus"
        "/api/v1/query"
    )
    assert set(source.services) == {API, WORKER}
    rpm = source.queries["requests_per_minute"]
    assert rpm == (
        "sum by (service_name) (rate(run_googleapis_com:request_count{"
        f'project_id="{PROJECT}",location="{REGION}",service_name=~"api|worker"'
        "}[5m])) * 60"
    )
    assert 'response_code_class="5xx"' in source.queries["error_rate"]
    assert "run_googleapis_com:container_instance_count" in source.queries["instances"]


def _beside_prometheus(queries: dict[str, str]) -> dict[str, Any]:
    values = settings_for("http://127.0.0.1:9")
    values["metrics"]["prometheus"] = {
        "url": "http://127.0.0.1:9",
        "queries": queries,
        "services": {API: "api"},
    }
    return values


def test_two_sources_supplying_one_metric_of_a_service_are_refused_naming_each_pair() -> None:
    """Both would be merged in the order they answered, each replacing the other's value (or
    removing it, when it had none): which one a policy decided on changed from tick to tick."""
    values = _beside_prometheus(
        {
            "requests_per_minute": 'sum by (service) (rate(x{service=~"$services"}[1m]))',
            "concurrency": 'max by (service) (y{service=~"$services"})',
        }
    )
    with pytest.raises(ConfigError) as refused:
        build_metric_sources(load_settings(**values))
    lines = str(refused.value).splitlines()
    assert lines[1:] == [f"  {API}: requests_per_minute from both prometheus and cloud_monitoring"]
    assert "keep it in one" in lines[0]


def test_a_metric_cloud_monitoring_does_not_supply_may_come_from_prometheus() -> None:
    """Concurrency has no built-in Cloud Monitoring template: Prometheus may supply it."""
    values = _beside_prometheus({"concurrency": 'max by (service) (y{service=~"$services"})'})
    sources = build_metric_sources(load_settings(**values))
    assert [source.name for source in sources] == ["prometheus", "cloud_monitoring"]


def test_config_check_refuses_two_sources_of_one_metric_in_one_line_each(
    jarvis: Jarvis,  # noqa: F811 - the fixture
    tmp_path: Path,
) -> None:
    """`jarvis config check` (and so `run`) exits 2 naming the pair, not a traceback."""
    (tmp_path / "both.toml").write_text(
        f"""
[cloudrun]
project = "{PROJECT}"
region = "{REGION}"
services = ["api", "worker"]
credentials = "anonymous"
api_endpoint = "http://127.0.0.1:9"

[metrics.cloud_monitoring]
url = "http://127.0.0.1:9"

[metrics.prometheus]
url = "http://127.0.0.1:9"
services = {{ "{API}" = "api" }}
queries = {{ error_rate = 'sum by (service) (z{{service=~"$services"}})' }}
"""
    )
    result = jarvis("--config", "both.toml", "config", "check")
    assert result.returncode == 2, result.stderr
    assert f"{API}: error_rate from both prometheus and cloud_monitoring" in result.stderr
    assert "Traceback" not in result.stderr
