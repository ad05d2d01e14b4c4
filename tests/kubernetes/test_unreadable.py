"""One object the client cannot read is that object's problem, not the cluster's.

The kubernetes client validates every object it deserializes; one pod, ReplicaSet,
Deployment or HPA with a field it refuses (a string where an int belongs, a
malformed timestamp) used to fail the whole list, hence the whole observe, as a
provider-wide ``ConnectionError``. Now only the Deployment it belongs to is
UNKNOWN, the others are observed, and the breaker does not count it; an API
server that cannot be reached still is a provider-wide error.
"""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client

from jarvis.actuators.base import ActuatorError, PartialObserveError
from jarvis.actuators.kubernetes.actuator import KubernetesActuator
from jarvis.actuators.kubernetes.changes import may_target
from jarvis.actuators.kubernetes.client import (
    UNREADABLE,
    BadResponseError,
    list_items,
    to_actuator_error,
)
from jarvis.config.kubernetes import KubernetesSettings
from jarvis.model import Action, ErrorKind, Health, OutcomeStatus, ResourceRef, Restart, Scale
from tests.actions import new_key
from tests.kubernetes.conftest import FakeClock
from tests.kubernetes.fake_apiserver import FakeApiServer
from tests.loopback import free_port

pytestmark = pytest.mark.anyio

PRODUCER = "k8s://default/producer"
CONSUMER = "k8s://default/consumer"


def _two(apiserver: FakeApiServer) -> None:
    apiserver.cluster.add_deployment("default", "producer")
    apiserver.cluster.add_deployment("default", "consumer")


async def _partial(actuator: KubernetesActuator) -> PartialObserveError:
    with pytest.raises(PartialObserveError) as raised:
        await actuator.observe()
    return raised.value


def _by_ref(error: PartialObserveError) -> dict[str, Any]:
    return {str(state.ref): state for state in error.states}


async def test_an_unreadable_pod_makes_only_its_deployment_unknown(
    apiserver: FakeApiServer, actuator: KubernetesActuator
) -> None:
    """A pod whose restartCount is not an int: its Deployment is UNKNOWN, the other observed."""
    _two(apiserver)
    pod = apiserver.cluster.pods_of("default", "producer")[0]["metadata"]["name"]
    apiserver.cluster.set_field(
        "pods", "default", pod, "status.containerStatuses.0.restartCount", "three"
    )

    error = await _partial(actuator)

    states = _by_ref(error)
    assert set(states) == {PRODUCER, CONSUMER}
    assert states[CONSUMER].health is Health.HEALTHY
    assert states[PRODUCER].health is Health.UNKNOWN
    assert "restartCount" in states[PRODUCER].detail
    assert (error.kind, error.code) == (ErrorKind.TERMINAL, UNREADABLE)
    assert "default/producer" in str(error)


async def test_an_unreadable_deployment_is_unknown_and_the_others_are_observed(
    apiserver: FakeApiServer, actuator: KubernetesActuator
) -> None:
    """A Deployment with a malformed timestamp is UNKNOWN by name; the others are read."""
    _two(apiserver)
    apiserver.cluster.set_field(
        "deployments", "default", "producer", "status.conditions.0.lastUpdateTime", "yesterday"
    )

    error = await _partial(actuator)

    states = _by_ref(error)
    assert states[CONSUMER].health is Health.HEALTHY
    assert states[PRODUCER].health is Health.UNKNOWN
    assert "lastUpdateTime" in states[PRODUCER].detail
    assert error.code == UNREADABLE


async def test_an_unreadable_hpa_makes_its_target_unknown(
    apiserver: FakeApiServer, actuator: KubernetesActuator
) -> None:
    """An HPA the client refuses: the Deployment it targets is UNKNOWN (its bounds are unknown)."""
    _two(apiserver)
    apiserver.cluster.add_hpa(
        "default", "producer", target="producer", min_replicas=2, max_replicas=5
    )
    apiserver.cluster.set_field(
        "horizontalpodautoscalers", "default", "producer", "status.currentReplicas", "two"
    )

    error = await _partial(actuator)

    states = _by_ref(error)
    assert states[CONSUMER].health is Health.HEALTHY
    assert states[PRODUCER].health is Health.UNKNOWN
    assert "HorizontalPodAutoscaler" in states[PRODUCER].detail or "HPA" in states[PRODUCER].detail


async def test_restarting_an_unreadable_deployment_fails_terminally(
    apiserver: FakeApiServer, actuator: KubernetesActuator
) -> None:
    """apply() on a Deployment the client cannot read: terminal, not a provider ConnectionError."""
    _two(apiserver)
    apiserver.cluster.set_field(
        "deployments", "default", "producer", "status.conditions.0.lastUpdateTime", "yesterday"
    )
    restart = Action(
        ResourceRef("k8s", "default/producer", kind="deployment"),
        Restart(),
        policy="heal",
        reason="test",
    )

    outcome = await actuator.apply(restart, new_key())

    assert (outcome.status, outcome.error_kind, outcome.error_code) == (
        OutcomeStatus.FAILED,
        ErrorKind.TERMINAL,
        UNREADABLE,
    )
    assert "lastUpdateTime" in (outcome.detail or "")
    assert apiserver.writes() == []


async def test_an_unreachable_api_server_is_a_provider_wide_connection_error() -> None:
    """Nothing listening: a temporary ConnectionError, which the breaker counts."""
    settings = KubernetesSettings(namespaces=["default"], request_timeout=5)
    api = client.ApiClient(client.Configuration(host=f"http://127.0.0.1:{free_port()}"))
    actuator = KubernetesActuator.from_settings(settings, clock=FakeClock(), api_client=api)
    try:
        with pytest.raises(ActuatorError) as raised:
            await actuator.observe()
    finally:
        await actuator.aclose()
    assert not isinstance(raised.value, PartialObserveError)
    assert (raised.value.kind, raised.value.code) == (ErrorKind.TEMPORARY, "ConnectionError")


async def test_an_unreadable_hpa_of_another_deployment_does_not_stop_a_scale(
    apiserver: FakeApiServer, actuator: KubernetesActuator
) -> None:
    """Scaling consumer reads the namespace's HPAs: producer's unreadable one is not its own."""
    _two(apiserver)
    apiserver.cluster.add_hpa(
        "default", "producer", target="producer", min_replicas=2, max_replicas=5
    )
    apiserver.cluster.set_field(
        "horizontalpodautoscalers", "default", "producer", "status.currentReplicas", "two"
    )
    scale = Action(
        ResourceRef("k8s", "default/consumer", kind="deployment"),
        Scale(replicas=3),
        policy="scaling",
        reason="test",
    )

    outcome = await actuator.apply(scale, new_key())

    assert outcome.ok, outcome
    assert apiserver.cluster.deployment_spec("default", "consumer")["replicas"] == 3


async def test_an_unreadable_deployment_without_a_usable_name_is_still_reported(
    apiserver: FakeApiServer, actuator: KubernetesActuator
) -> None:
    """A list item the client refuses and that names no Deployment has no state to carry,
    but the observe still reports it (partial), rather than dropping it without a word."""
    _two(apiserver)
    apiserver.cluster.set_field("deployments", "default", "producer", "metadata.name", 7)

    error = await _partial(actuator)

    assert [str(state.ref) for state in error.states] == [CONSUMER]
    assert error.code == UNREADABLE
    assert "a Deployment in default cannot be read: V1ObjectMeta: name" in str(error)


class _Answer:
    """What a list call returns with ``_preload_content=False``: the raw body."""

    def __init__(self, body: bytes) -> None:
        self.data = body


def test_a_list_item_that_is_not_an_object_is_unreadable_and_may_target_anything() -> None:
    """An item that is not even a JSON object is set aside, names nothing, and an HPA of that
    kind may target any Deployment (it is not a crash in the caller)."""

    def call(**_: object) -> _Answer:
        return _Answer(b'{"items": ["garbage", 7]}')

    found, unreadable = list_items(call, client.V2HorizontalPodAutoscaler.from_dict)

    assert found == []
    assert [(bad.namespace, bad.name) for bad in unreadable] == [("", ""), ("", "")]
    assert all(may_target(bad, "producer") for bad in unreadable)


def test_a_list_answer_that_is_not_json_is_the_servers_bad_response() -> None:
    """A list answered with an HTML page: a temporary BadResponse, not one object's problem."""

    def call(**_: object) -> _Answer:
        return _Answer(b"<html>502 Bad Gateway</html>")

    with pytest.raises(BadResponseError) as raised:
        list_items(call, client.V1Pod.from_dict)
    error = to_actuator_error(raised.value, "listing pods")
    assert (error.kind, error.code) == (ErrorKind.TEMPORARY, "BadResponse")
