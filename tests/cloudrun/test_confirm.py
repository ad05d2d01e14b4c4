"""confirm_applied() against the fake Cloud Run API: recovery's proof that a change applied."""

from __future__ import annotations

import pytest

from jarvis.actuators.base import ActuatorError, ConfirmsKeys
from jarvis.actuators.cloudrun.actuator import CloudRunActuator
from jarvis.model import Action, ActionParams, Deploy, ResourceRef, Restart, Scale
from tests.actions import new_key
from tests.cloudrun.conftest import BAD_IMAGE, PROJECT, REGION, service_name
from tests.cloudrun.fake_server import FakeCloudRun

pytestmark = pytest.mark.anyio

API = ResourceRef("cloudrun", f"{PROJECT}/{REGION}/api", "service")
WORKER = ResourceRef("cloudrun", f"{PROJECT}/{REGION}/worker", "service")


def act(params: ActionParams, target: ResourceRef = API) -> Action:
    return Action(target, params, "test", "because the test says so")


async def test_a_finished_update_is_confirmed_by_its_key(
    actuator: CloudRunActuator, fake: FakeCloudRun
) -> None:
    """A restart whose operation ended in success is confirmed by its key, for any kind the
    actuator owns; a later update's key replaces it."""
    assert isinstance(actuator, ConfirmsKeys)
    first, later = new_key(), new_key()
    assert (await actuator.apply(act(Restart()), first)).ok

    proof = await actuator.confirm_applied(API, "restart", first)

    assert proof is not None
    assert proof.startswith(f"service api carries jarvis.io/action-key={first}, and its generation")
    assert await actuator.confirm_applied(API, "restart", new_key()) is None
    assert await actuator.confirm_applied(API, "set_weights", first) is None
    assert (await actuator.apply(act(Scale(replicas=3)), later)).ok
    assert await actuator.confirm_applied(API, "restart", first) is None
    assert await actuator.confirm_applied(API, "scale", later)


async def test_an_accepted_update_still_rolling_out_is_not_confirmed_until_it_finishes(
    actuator: CloudRunActuator, fake: FakeCloudRun
) -> None:
    """Cloud Run accepted the update carrying the key (the process died while its operation
    ran): not confirmed while the service reconciles, confirmed once it is ready."""
    key = new_key()
    fake.state.operation_polls = None
    stored = fake.state.get_service(service_name("api"))
    template = {**stored["template"], "annotations": {"jarvis.io/restartedAt": "now"}}
    body = {"annotations": {"jarvis.io/action-key": key}, "template": template}
    fake.state.update_service(service_name("api"), body, ["annotations", "template"])

    assert await actuator.confirm_applied(API, "restart", key) is None

    fake.state.finish_operations()
    assert await actuator.confirm_applied(API, "restart", key)


async def test_an_update_whose_rollout_failed_is_not_confirmed(
    actuator: CloudRunActuator, fake: FakeCloudRun
) -> None:
    """A deploy whose new revision never became ready carries its key (Cloud Run keeps the
    written spec) but is not confirmed: the live apply called it a failure too."""
    key = new_key()
    outcome = await actuator.apply(act(Deploy(BAD_IMAGE), WORKER), key)
    assert not outcome.ok
    stored = fake.state.get_service(service_name("worker"))
    assert stored["annotations"]["jarvis.io/action-key"] == key

    assert await actuator.confirm_applied(WORKER, "deploy", key) is None


async def test_a_missing_or_unmanaged_service_confirms_nothing_and_an_error_raises(
    actuator: CloudRunActuator, fake: FakeCloudRun
) -> None:
    """A managed service Cloud Run no longer has, or one outside the configuration, confirms
    nothing; an API answering 500 raises a one-line `ActuatorError`."""
    key = new_key()
    assert (await actuator.apply(act(Restart()), key)).ok
    other = ResourceRef("cloudrun", f"{PROJECT}/{REGION}/other", "service")
    assert await actuator.confirm_applied(other, "restart", key) is None
    fake.state.services.pop(service_name("worker"))
    assert await actuator.confirm_applied(WORKER, "restart", key) is None

    fake.fail_with(500)
    with pytest.raises(ActuatorError):
        await actuator.confirm_applied(API, "restart", key)
