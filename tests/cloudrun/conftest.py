"""Fixtures for the Cloud Run tests: the fake Admin API on a free loopback port, real
`google-cloud-run` REST clients pointed at it, and a `CloudRunActuator` on top; for
Cloud Monitoring, Cloud Run's series scraped by a real Prometheus behind a Google front
(token endpoint and bearer check), with application-default credentials pointing at it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from jarvis.actuators.cloudrun.actuator import CloudRunActuator
from jarvis.actuators.cloudrun.client import Clients, build_clients
from jarvis.config.cloudrun import CloudRunSettings
from jarvis.loop.clock import VirtualClock
from tests.cloudrun.fake_server import FakeCloudRun
from tests.cloudrun.google_front import GoogleFront
from tests.cloudrun.monitoring_exporter import RULES, CloudRunExporter
from tests.prometheus.server import PrometheusServer

PROJECT = "demo-project"
REGION = "us-central1"
IMAGE = "us-docker.pkg.dev/demo-project/apps/api:1.0"
BAD_IMAGE = "us-docker.pkg.dev/demo-project/apps/api:broken"


def service_name(service: str) -> str:
    return f"projects/{PROJECT}/locations/{REGION}/services/{service}"


@pytest.fixture
def fake() -> Iterator[FakeCloudRun]:
    """The fake with two healthy services, ``api`` and ``worker``; bad images never get ready."""
    with FakeCloudRun() as server:
        server.state.add_service(
            PROJECT, REGION, "api", image=IMAGE, min_instances=1, max_instances=10
        )
        server.state.add_service(PROJECT, REGION, "worker", image=IMAGE)
        server.state.revision_ready = lambda _service, template: all(
            c.get("image") != BAD_IMAGE for c in template.get("containers", [])
        )
        yield server


def make_settings(fake: FakeCloudRun, **overrides: object) -> CloudRunSettings:
    values: dict[str, object] = {
        "project": PROJECT,
        "region": REGION,
        "services": ["api", "worker"],
        "credentials": "anonymous",
        "api_endpoint": fake.endpoint,
        "request_timeout": 2.0,
        "operation_timeout": 5.0,
        "poll_initial": 0.01,
        "poll_maximum": 0.05,
    }
    values.update(overrides)
    return CloudRunSettings.model_validate(values)


@pytest.fixture
def settings(fake: FakeCloudRun) -> CloudRunSettings:
    return make_settings(fake)


@pytest.fixture
def clients(settings: CloudRunSettings) -> Iterator[Clients]:
    built = build_clients(settings)
    yield built
    built.close()


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
def actuator(settings: CloudRunSettings, clock: VirtualClock, clients: Clients) -> CloudRunActuator:
    return CloudRunActuator.from_settings(settings, clock=clock, clients=clients)


@pytest.fixture
def exporter() -> Iterator[CloudRunExporter]:
    """Cloud Run's series for ``api`` and ``worker``, idle until the test sets traffic."""
    served = CloudRunExporter(PROJECT, REGION, ["api", "worker"])
    yield served
    served.close()


@pytest.fixture
def prometheus(exporter: CloudRunExporter) -> Iterator[PrometheusServer]:
    with PrometheusServer([exporter.port], rules=RULES) as server:
        yield server


@pytest.fixture
def google(prometheus: PrometheusServer) -> Iterator[GoogleFront]:
    """Google's token endpoint and Cloud Monitoring's PromQL front over that Prometheus."""
    with GoogleFront(PROJECT, prometheus.url) as front:
        yield front


@pytest.fixture
def adc(google: GoogleFront, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Application-default credentials: a service-account key whose token endpoint is ``google``."""
    key = google.write_key(tmp_path / "key.json")
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key))
    return key
