"""Fixtures for the kubernetes actuator tests: a fake API server and a real client on it.

Every `apiserver` fixture checks, when its test ends, that each request the
test made is granted by the Role in deploy/kubernetes/base/rbac.yaml, so a new API
call without a matching RBAC rule fails the suite.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]  # PyYAML ships no stubs and types-PyYAML is not a dependency
from kubernetes import client

from jarvis.actuators.kubernetes.actuator import KubernetesActuator
from jarvis.config.kubernetes import KubernetesSettings
from tests.kubernetes.fake_apiserver import Call, FakeApiServer

DEPLOY_DIR = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes" / "base"


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self) -> None:
        self.current = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)

    def now(self) -> datetime:
        return self.current

    def monotonic(self) -> float:
        return self.current.timestamp()  # it never steps back

    async def sleep(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)


def role_rules(name: str | None = "jarvis-actuator") -> set[tuple[str, str, str]]:
    """(apiGroup, resource, verb) triples granted by the Role ``name`` in rbac.yaml (None: all)."""
    docs: list[dict[str, Any]] = list(
        yaml.safe_load_all((DEPLOY_DIR / "rbac.yaml").read_text(encoding="utf-8"))
    )
    roles = [
        doc for doc in docs if doc["kind"] == "Role" and name in {None, doc["metadata"]["name"]}
    ]
    assert roles, f"no Role {name!r} in rbac.yaml"
    return {
        (group, resource, verb)
        for role in roles
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def ungranted(calls: list[Call]) -> list[Call]:
    granted = role_rules(None)
    return [call for call in calls if call.rule not in granted]


@pytest.fixture
def apiserver() -> Iterator[FakeApiServer]:
    with FakeApiServer() as server:
        yield server
        missing = ungranted(server.calls)
        assert not missing, f"calls not granted by deploy/kubernetes/base/rbac.yaml: {missing}"


@pytest.fixture
def api_client(apiserver: FakeApiServer) -> Iterator[client.ApiClient]:
    api = client.ApiClient(client.Configuration(host=apiserver.url))
    yield api
    api.close()  # type: ignore[no-untyped-call]  # untyped in the SDK


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def settings() -> KubernetesSettings:
    return KubernetesSettings(namespaces=["default", "prod"], request_timeout=2.0)


@pytest.fixture
def actuator(
    settings: KubernetesSettings, api_client: client.ApiClient, clock: FakeClock
) -> KubernetesActuator:
    return KubernetesActuator.from_settings(settings, clock=clock, api_client=api_client)
