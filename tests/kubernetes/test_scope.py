"""A scoped observe (shards) reads the pods of owned Deployments only, and names the rest."""

from __future__ import annotations

import pytest

from jarvis.actuators.base import Scope
from jarvis.actuators.kubernetes.actuator import KubernetesActuator
from jarvis.loop.shards import shard_of
from tests.kubernetes.fake_apiserver import FakeApiServer

pytestmark = pytest.mark.anyio

NAMES = [f"svc-{index}" for index in range(12)]


def owned(uri: str) -> bool:
    return shard_of(uri, 3) == 0


async def test_a_scoped_observe_lists_pods_only_of_owned_deployments(
    apiserver: FakeApiServer, actuator: KubernetesActuator
) -> None:
    """Deployments outside the scope cost no pod or ReplicaSet list; they are only named."""
    for name in NAMES:
        apiserver.cluster.add_deployment("default", name)
    uris = [f"k8s://default/{name}" for name in NAMES]
    mine = sorted(uri for uri in uris if owned(uri))
    assert 0 < len(mine) < len(uris)  # the hash splits this fleet, or the test proves nothing
    apiserver.calls.clear()

    scope = Scope(owned)
    states = await actuator.observe(scope)

    assert [str(s.ref) for s in states] == mine
    assert sorted(str(ref) for ref in scope.others) == sorted(set(uris) - set(mine))
    pod_lists = [c for c in apiserver.calls if c.resource == "pods" and c.verb == "list"]
    assert len(pod_lists) == len(mine)


async def test_an_unscoped_observe_reads_every_deployment(
    apiserver: FakeApiServer, actuator: KubernetesActuator
) -> None:
    """Without a scope (one replica) every Deployment is observed in full, as before."""
    for name in NAMES:
        apiserver.cluster.add_deployment("default", name)
    apiserver.calls.clear()

    states = await actuator.observe()

    assert len(states) == len(NAMES)
    assert len([c for c in apiserver.calls if c.resource == "pods"]) == len(NAMES)
