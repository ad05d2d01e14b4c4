"""Fixtures for the Cloud Run tests: the fake Admin API on a free loopback port, real
`google-cloud-run` REST clients pointed at it, and a `CloudRunActuator` on top."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from jarvis.actuators.cloudrun.actuator import CloudRunActuator
from jarvis.actuators.cloudrun.client import Clients, build_clients
from jarvis.config.cloudrun import CloudRunSettings
from jarvis.loop.clock import VirtualClock
from tests.cloudrun.fake_server import FakeCloudRun

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
