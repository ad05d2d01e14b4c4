"""A scoped observe (shards) reads only the owned Cloud Run services, one GET each."""

from __future__ import annotations

import pytest

from jarvis.actuators.base import Scope
from jarvis.actuators.cloudrun.actuator import CloudRunActuator
from tests.cloudrun.fake_server import FakeCloudRun

pytestmark = pytest.mark.anyio


async def test_a_scoped_observe_reads_only_owned_services(
    fake: FakeCloudRun, actuator: CloudRunActuator
) -> None:
    """The service outside the scope is never read; it is named among the others."""
    api, worker = actuator.ref("api"), actuator.ref("worker")
    fake.requests.clear()

    scope = Scope(lambda uri: uri == str(api))
    states = await actuator.observe(scope)

    assert [s.ref for s in states] == [api]
    assert scope.others == [worker]
    read = [r.path for r in fake.requests if r.method == "GET"]
    assert read and all(path.split("/services/")[1].startswith("api") for path in read), read
