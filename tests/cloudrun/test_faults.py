"""A Cloud Run API that errors or never answers: observe raises, apply reports, nothing hangs."""

from __future__ import annotations

import pytest

from jarvis.actuators.base import ActuatorError
from jarvis.actuators.cloudrun.actuator import CloudRunActuator
from jarvis.actuators.cloudrun.client import build_clients
from jarvis.loop.clock import VirtualClock
from jarvis.model import Action, ErrorKind, Health, OutcomeStatus, ResourceRef, Restart
from tests.actions import new_key
from tests.cloudrun.conftest import PROJECT, REGION, make_settings
from tests.cloudrun.fake_server import FakeCloudRun

pytestmark = pytest.mark.anyio

API = ResourceRef("cloudrun", f"{PROJECT}/{REGION}/api", "service")
RESTART = Action(API, Restart(), "test", "crash loop")


@pytest.mark.parametrize(
    ("status", "kind", "code"),
    [
        (500, ErrorKind.TEMPORARY, "INTERNAL"),
        (503, ErrorKind.TEMPORARY, "UNAVAILABLE"),
        (429, ErrorKind.TEMPORARY, "RESOURCE_EXHAUSTED"),
        (403, ErrorKind.TERMINAL, "PERMISSION_DENIED"),
        (400, ErrorKind.TERMINAL, "INVALID_ARGUMENT"),
    ],
)
async def test_an_api_error_makes_observe_raise_and_apply_fail_by_kind(
    actuator: CloudRunActuator, fake: FakeCloudRun, status: int, kind: ErrorKind, code: str
) -> None:
    """Each error status is classified: observe raises it, apply returns it as a failed outcome."""
    fake.fail_with(status)
    with pytest.raises(ActuatorError) as raised:
        await actuator.observe()
    assert (raised.value.kind, raised.value.code) == (kind, code)
    outcome = await actuator.apply(RESTART, new_key())
    assert outcome.status is OutcomeStatus.FAILED
    assert (outcome.error_kind, outcome.error_code) == (kind, code)
    assert fake.patches() == []


async def test_an_api_that_recovers_is_observed_again(
    actuator: CloudRunActuator, fake: FakeCloudRun
) -> None:
    """After a 500, the next observe succeeds once the API answers again."""
    fake.fail_with(500)
    with pytest.raises(ActuatorError):
        await actuator.observe()
    fake.heal()
    states = await actuator.observe()
    assert [s.health for s in states] == [Health.HEALTHY, Health.HEALTHY]


async def test_a_hanging_api_makes_observe_raise_within_the_request_timeout(
    fake: FakeCloudRun, clock: VirtualClock
) -> None:
    """A server that never answers turns into a TEMPORARY ActuatorError, not a stuck tick."""
    settings = make_settings(fake, request_timeout=0.3)
    clients = build_clients(settings)
    actuator = CloudRunActuator.from_settings(settings, clock=clock, clients=clients)
    fake.hang()
    try:
        with pytest.raises(ActuatorError) as raised:
            await actuator.observe()
        assert raised.value.kind is ErrorKind.TEMPORARY
        assert raised.value.code == "UNAVAILABLE"
        outcome = await actuator.apply(RESTART, new_key())
        assert outcome.status is OutcomeStatus.FAILED
        assert outcome.error_kind is ErrorKind.TEMPORARY
    finally:
        fake.heal()
        clients.close()
    assert fake.patches() == []


async def test_an_operation_poll_that_errors_fails_the_apply_temporarily(
    actuator: CloudRunActuator, fake: FakeCloudRun
) -> None:
    """A 500 while polling the operation is a TEMPORARY failure of the apply."""
    fake.fail_with(500, path_contains="/operations/")
    outcome = await actuator.apply(RESTART, new_key())
    assert outcome.status is OutcomeStatus.FAILED
    assert (outcome.error_kind, outcome.error_code) == (ErrorKind.TEMPORARY, "INTERNAL")
    assert len(fake.patches()) == 1
