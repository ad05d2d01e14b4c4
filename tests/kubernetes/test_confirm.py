"""confirm_applied() against the fake API server: recovery's proof that a change was made."""

from __future__ import annotations

import pytest

from jarvis.actuators.base import ActuatorError, ConfirmsKeys
from jarvis.actuators.kubernetes.actuator import KubernetesActuator
from jarvis.model import Action, ActionParams, ResourceRef, Restart, Rollback, Scale
from tests.actions import new_key
from tests.kubernetes.fake_apiserver import FakeApiServer

pytestmark = pytest.mark.anyio

PRODUCER = ResourceRef("k8s", "default/producer", kind="deployment")
STRATEGIC = "application/strategic-merge-patch+json"


def action(params: ActionParams) -> Action:
    return Action(PRODUCER, params, policy="test", reason="test")


def set_image(apiserver: FakeApiServer, image: str) -> None:
    body = {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": image}]}}}}
    apiserver.cluster.patch("deployments", "default", "producer", body, STRATEGIC)


async def test_a_change_is_confirmed_by_its_key_where_its_kind_writes_it(
    apiserver: FakeApiServer, actuator: KubernetesActuator
) -> None:
    """A scale, a restart and a rollback are each confirmed by their own key, for their kind
    only; another key, or the key asked for as another kind, is not."""
    assert isinstance(actuator, ConfirmsKeys)
    apiserver.cluster.add_deployment("default", "producer", image="registry.local/app:v1")
    scale, restart, rollback = new_key(), new_key(), new_key()
    assert (await actuator.apply(action(Scale(replicas=4)), scale)).ok
    assert await actuator.confirm_applied(PRODUCER, "scale", scale) == (
        f"deployment default/producer carries jarvis.io/action-key={scale}"
    )
    assert (await actuator.apply(action(Restart()), restart)).ok
    set_image(apiserver, "registry.local/app:v2")
    assert (await actuator.apply(action(Rollback("")), rollback)).ok

    confirmed = {
        kind: await actuator.confirm_applied(PRODUCER, kind, key)
        for kind, key in [("restart", restart), ("rollback", rollback)]
    }
    # The rollback's patch wrote its key over the scale's on the Deployment: an object
    # keeps only its latest change's key, so the scale is no longer confirmed.
    assert await actuator.confirm_applied(PRODUCER, "scale", scale) is None
    assert await actuator.confirm_applied(PRODUCER, "restart", rollback) is None
    assert await actuator.confirm_applied(PRODUCER, "rollback", restart) is None
    assert await actuator.confirm_applied(PRODUCER, "rollback", new_key()) is None
    assert confirmed["restart"] == (
        f"deployment default/producer's pod template carries jarvis.io/action-key={restart}"
    )
    assert confirmed["rollback"] == (
        f"deployment default/producer carries jarvis.io/action-key={rollback}"
    )


async def test_a_scale_through_an_hpa_is_confirmed_by_the_hpa_key(
    apiserver: FakeApiServer, actuator: KubernetesActuator
) -> None:
    """A scale that moved an HPA's bounds is confirmed by the key on that HPA."""
    cluster = apiserver.cluster
    cluster.add_deployment("default", "producer", replicas=2)
    cluster.add_hpa("default", "producer-hpa", target="producer", min_replicas=2, max_replicas=4)
    key = new_key()
    assert (await actuator.apply(action(Scale(replicas=6)), key)).ok

    proof = await actuator.confirm_applied(PRODUCER, "scale", key)

    assert proof == (
        "HPA default/producer-hpa of deployment default/producer carries "
        f"jarvis.io/action-key={key}"
    )
    assert await actuator.confirm_applied(PRODUCER, "scale", new_key()) is None


async def test_nothing_is_confirmed_for_a_missing_or_unmanaged_deployment(
    apiserver: FakeApiServer, actuator: KubernetesActuator
) -> None:
    """A Deployment that is not there, one outside the managed namespaces, or a key never
    written confirms nothing; a change that wrote nothing (already at the count) neither."""
    apiserver.cluster.add_deployment("default", "producer", replicas=2)
    apiserver.cluster.add_deployment("elsewhere", "producer", replicas=2)
    unchanged = new_key()
    assert (await actuator.apply(action(Scale(replicas=2)), unchanged)).ok

    gone = ResourceRef("k8s", "default/gone", kind="deployment")
    assert await actuator.confirm_applied(gone, "restart", new_key()) is None
    assert await actuator.confirm_applied(PRODUCER, "scale", unchanged) is None
    other = ResourceRef("k8s", "elsewhere/producer", kind="deployment")
    assert await actuator.confirm_applied(other, "scale", unchanged) is None


async def test_an_api_that_cannot_be_read_raises_a_one_line_error(
    apiserver: FakeApiServer, actuator: KubernetesActuator
) -> None:
    """A read that fails is an `ActuatorError` naming what was asked, not a raw SDK error."""
    apiserver.cluster.add_deployment("default", "producer")
    apiserver.fault = "error"

    expected = r"^confirming restart k8s://default/producer: HTTP 500"
    with pytest.raises(ActuatorError, match=expected):
        await actuator.confirm_applied(PRODUCER, "restart", new_key())
