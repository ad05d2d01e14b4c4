"""observe() against the fake API server: health, replicas, rollout and autoscaler facts."""

from __future__ import annotations

import pytest

from jarvis.actuators.kubernetes.actuator import KubernetesActuator
from jarvis.model import (
    Action,
    Health,
    ResourceRef,
    ResourceState,
    Restart,
    RolloutState,
    Versions,
)
from tests.actions import new_key
from tests.kubernetes.fake_apiserver import FakeApiServer

pytestmark = pytest.mark.anyio


async def observe_one(actuator: KubernetesActuator, uri: str) -> ResourceState:
    states = {str(s.ref): s for s in await actuator.observe()}
    return states[uri]


async def test_healthy_deployment_is_observed_with_replicas_and_version(
    apiserver: FakeApiServer, actuator: KubernetesActuator
) -> None:
    """A fully rolled-out Deployment is HEALTHY, with its replica counts and image version."""
    apiserver.cluster.add_deployment("default", "vocal-coach", replicas=3)

    state = await observe_one(actuator, "k8s://default/vocal-coach")

    assert state.health is Health.HEALTHY
    assert state.ref == ResourceRef("k8s", "default/vocal-coach", kind="deployment")
    assert state.replicas is not None
    assert (state.replicas.desired, state.replicas.running, state.replicas.pending) == (3, 3, 0)
    assert state.version is not None
    assert state.version.startswith("registry.local/app:v1#")
    assert state.record_attributes()["revision"] == 1
    assert state.record_attributes()["rollout"] == "completed"
    assert state.record_attributes()["images"] == ["registry.local/app:v1"]
    assert state.record_attributes()["pods"]["ready"] == 3
    assert state.record_attributes()["min_replicas_owner"] == "deployment"
    assert state.record_attributes()["previous_version"] is None


async def test_only_selected_deployments_in_configured_namespaces_are_observed(
    apiserver: FakeApiServer, actuator: KubernetesActuator
) -> None:
    """Deployments without the managed label, or outside the namespaces, are left out."""
    cluster = apiserver.cluster
    cluster.add_deployment("default", "producer")
    cluster.add_deployment("prod", "ai-brain")
    cluster.add_deployment("default", "postgres", labels={"app": "postgres"})
    cluster.add_deployment("kube-system", "coredns")

    states = await actuator.observe()

    assert [str(s.ref) for s in states] == ["k8s://default/producer", "k8s://prod/ai-brain"]
    lists = [c for c in apiserver.calls if c.verb == "list" and c.resource == "deployments"]
    assert {c.namespace for c in lists} == {"default", "prod"}


async def test_crash_looping_pods_make_the_deployment_unhealthy(
    apiserver: FakeApiServer, actuator: KubernetesActuator
) -> None:
    """Pods waiting in CrashLoopBackOff make the Deployment UNHEALTHY and are counted."""
    apiserver.cluster.add_deployment("default", "producer", replicas=2)
    apiserver.cluster.crash_pods("default", "producer")

    state = await observe_one(actuator, "k8s://default/producer")

    assert state.health is Health.UNHEALTHY
    assert "CrashLoopBackOff" in state.detail
    assert state.record_attributes()["pods"]["waiting"] == {"CrashLoopBackOff": 2}
    assert state.metrics["pod_restarts"] == 14.0
    assert state.replicas is not None
    assert state.replicas.running == 0


async def test_bad_image_rollout_is_unhealthy_with_the_previous_revision_known(
    apiserver: FakeApiServer, actuator: KubernetesActuator
) -> None:
    """A rollout stuck on ImagePullBackOff is UNHEALTHY, in progress, and names revision 1."""
    cluster = apiserver.cluster
    cluster.add_deployment("default", "producer", image="registry.local/app:v1")
    cluster.fail_image("registry.local/app:v2", "ImagePullBackOff")
    cluster.patch(
        "deployments",
        "default",
        "producer",
        {
            "spec": {
                "template": {
                    "spec": {"containers": [{"name": "app", "image": "registry.local/app:v2"}]}
                }
            }
        },
        "application/strategic-merge-patch+json",
    )

    state = await observe_one(actuator, "k8s://default/producer")

    assert state.health is Health.UNHEALTHY
    assert "ImagePullBackOff" in state.detail
    assert state.version is not None
    assert state.version.startswith("registry.local/app:v2#")
    assert state.record_attributes()["revision"] == 2
    assert state.record_attributes()["rollout"] == "in_progress"
    revisions = state.record_attributes()["revisions"]
    assert [(r["revision"], r["images"]) for r in revisions] == [
        (2, ["registry.local/app:v2"]),
        (1, ["registry.local/app:v1"]),
    ]
    assert revisions[0]["version"] == state.version
    assert state.record_attributes()["previous_version"] == revisions[1]["version"]
    assert state.record_attributes()["versions_available"] == [revisions[1]["version"]]
    assert state.rollout is not None and state.rollout.state is RolloutState.IN_PROGRESS
    assert state.rollout.crash_looping is False
    old = revisions[1]["version"]
    assert state.versions == Versions(previous=old, available=(old,))
    # The old pods keep serving while the new ones cannot start.
    assert state.replicas is not None
    assert state.replicas.running == 2


async def test_slow_rollout_without_failing_pods_is_degraded(
    apiserver: FakeApiServer, actuator: KubernetesActuator
) -> None:
    """New pods that are not ready yet, but not failing, make the Deployment DEGRADED."""
    cluster = apiserver.cluster
    cluster.add_deployment("default", "producer", replicas=2)
    cluster.fail_image("registry.local/app:v2", "ContainerCreating")
    cluster.patch(
        "deployments",
        "default",
        "producer",
        [
            {
                "op": "replace",
                "path": "/spec/template/spec/containers/0/image",
                "value": "registry.local/app:v2",
            }
        ],
        "application/json-patch+json",
    )

    state = await observe_one(actuator, "k8s://default/producer")

    assert state.health is Health.DEGRADED
    assert state.record_attributes()["rollout"] == "in_progress"
    assert state.record_attributes()["status_replicas"]["updated"] == 2


async def test_progress_deadline_exceeded_is_unhealthy_and_failed(
    apiserver: FakeApiServer, actuator: KubernetesActuator
) -> None:
    """A Progressing=False/ProgressDeadlineExceeded condition is an UNHEALTHY, failed rollout."""
    apiserver.cluster.add_deployment("default", "producer")
    apiserver.cluster.exceed_progress_deadline("default", "producer")

    state = await observe_one(actuator, "k8s://default/producer")

    assert state.health is Health.UNHEALTHY
    assert state.record_attributes()["rollout"] == "failed"
    assert state.record_attributes()["conditions"]["Progressing"] == {
        "status": "False",
        "reason": "ProgressDeadlineExceeded",
    }


async def test_hpa_bounds_and_cpu_are_reported(
    apiserver: FakeApiServer, actuator: KubernetesActuator
) -> None:
    """An HPA targeting the Deployment supplies replica bounds and cpu_utilization."""
    cluster = apiserver.cluster
    cluster.add_deployment("default", "ai-brain", replicas=2)
    cluster.add_hpa(
        "default", "ai-brain", target="ai-brain", min_replicas=3, max_replicas=8, cpu_utilization=81
    )

    state = await observe_one(actuator, "k8s://default/ai-brain")

    assert state.replicas is not None
    # Jarvis scales such a Deployment by setting the HPA's min (`DeploymentChanges.scale`):
    # read back as a floor, each scale-up would hold for good.
    assert (state.replicas.desired, state.replicas.min, state.replicas.max) == (3, None, 8)
    assert state.record_attributes()["autoscaler"]["min_replicas"] == 3
    assert state.metrics["cpu_utilization"] == 81.0
    assert state.record_attributes()["min_replicas_owner"] == "hpa"
    assert state.record_attributes()["autoscaler"]["name"] == "ai-brain"


async def test_a_restart_keeps_the_version_and_offers_no_rollback(
    apiserver: FakeApiServer, actuator: KubernetesActuator
) -> None:
    """A restart makes a new revision of the same version, which is no rollback target."""
    apiserver.cluster.add_deployment("default", "producer")
    before = await observe_one(actuator, "k8s://default/producer")
    target = ResourceRef("k8s", "default/producer", kind="deployment")
    outcome = await actuator.apply(Action(target, Restart(), policy="test", reason="r"), new_key())
    assert outcome.ok

    state = await observe_one(actuator, "k8s://default/producer")

    assert state.record_attributes()["revision"] == 2
    assert state.version == before.version
    assert state.record_attributes()["versions_available"] == []
    assert state.record_attributes()["previous_version"] is None


async def test_a_crash_looping_init_container_is_a_crash_loop(
    apiserver: FakeApiServer, actuator: KubernetesActuator
) -> None:
    """New pods whose init container waits in CrashLoopBackOff make the Deployment UNHEALTHY."""
    cluster = apiserver.cluster
    cluster.add_deployment("default", "producer", image="registry.local/app:v1")
    cluster.fail_image("registry.local/migrate:v2", "CrashLoopBackOff")
    migrate = {"name": "migrate", "image": "registry.local/migrate:v2"}
    cluster.patch(
        "deployments",
        "default",
        "producer",
        {"spec": {"template": {"spec": {"initContainers": [migrate]}}}},
        "application/strategic-merge-patch+json",
    )

    state = await observe_one(actuator, "k8s://default/producer")

    assert state.health is Health.UNHEALTHY
    assert "CrashLoopBackOff" in state.detail
    assert state.rollout is not None and state.rollout.crash_looping is True
    assert state.metrics["pod_restarts"] == 14.0
    # The old pods keep serving while the new ones cannot start.
    assert state.replicas is not None
    assert state.replicas.running == 2


@pytest.mark.parametrize("revision", ["²", "1" * 5000, "-1", " 2"])
async def test_a_hand_written_revision_annotation_does_not_fail_the_observe(
    apiserver: FakeApiServer, actuator: KubernetesActuator, revision: str
) -> None:
    """An old ReplicaSet annotated by hand with a revision that is no int64 (a superscript
    digit, 5000 digits) has no revision; every Deployment is still observed."""
    cluster = apiserver.cluster
    cluster.add_deployment("default", "producer", image="registry.local/app:v1")
    cluster.add_deployment("default", "vocal-coach")
    old = cluster.list_objects("replicasets", "default", None)[0]["metadata"]["name"]
    v2 = {"containers": [{"name": "app", "image": "registry.local/app:v2"}]}
    cluster.patch(
        "deployments",
        "default",
        "producer",
        {"spec": {"template": {"spec": v2}}},
        "application/merge-patch+json",
    )
    cluster.annotate("replicasets", "default", old, "deployment.kubernetes.io/revision", revision)

    states = {s.ref.name: s for s in await actuator.observe()}

    assert set(states) == {"default/producer", "default/vocal-coach"}
    producer = states["default/producer"]
    assert producer.health is Health.HEALTHY
    assert producer.versions is not None
    assert producer.versions.previous is not None
    assert producer.versions.previous.startswith("registry.local/app:v1#")
    assert [r["revision"] for r in producer.record_attributes()["revisions"]] == [2, None]


async def test_pods_that_stop_being_ready_after_a_completed_rollout_are_an_outage(
    apiserver: FakeApiServer, actuator: KubernetesActuator
) -> None:
    """Once a rollout completed, no replica available is UNHEALTHY even if no pod's reason
    is a known failure: the Deployment is not rolling out, it is down."""
    apiserver.cluster.add_deployment("default", "producer", replicas=2)
    apiserver.cluster.crash_pods("default", "producer", reason="ContainerCreating")

    state = await observe_one(actuator, "k8s://default/producer")

    assert state.health is Health.UNHEALTHY
    assert state.record_attributes()["conditions"]["Progressing"]["reason"] == (
        "NewReplicaSetAvailable"
    )


async def test_a_pod_lost_after_a_completed_rollout_is_degraded_not_rolling_out(
    apiserver: FakeApiServer, actuator: KubernetesActuator
) -> None:
    """Once a rollout completed, one pod of two not ready is DEGRADED and the rollout facet
    stays completed: nothing is rolling out (`kubectl rollout status` would wait)."""
    apiserver.cluster.add_deployment("default", "producer", replicas=2)
    apiserver.cluster.crash_pods("default", "producer", reason="ContainerCreating", count=1)

    state = await observe_one(actuator, "k8s://default/producer")

    assert state.health is Health.DEGRADED, state.detail
    assert state.rollout is not None and state.rollout.state is RolloutState.COMPLETED
    assert state.rollout.reason is not None and "1 of 2" in state.rollout.reason


async def test_a_deployment_whose_first_pods_are_starting_is_a_rollout_in_progress(
    apiserver: FakeApiServer, actuator: KubernetesActuator
) -> None:
    """A new Deployment with no replica available yet, no pod failing, is DEGRADED and
    rolling out (as `kubectl rollout status` waits), not UNHEALTHY."""
    apiserver.cluster.fail_image("registry.local/app:v1", "ContainerCreating")
    apiserver.cluster.add_deployment("default", "producer", replicas=2)

    state = await observe_one(actuator, "k8s://default/producer")

    assert state.health is Health.DEGRADED, state.detail
    assert state.rollout is not None and state.rollout.state is RolloutState.IN_PROGRESS


async def test_a_deployment_the_controller_has_not_seen_yet_is_rolling_out(
    apiserver: FakeApiServer, actuator: KubernetesActuator
) -> None:
    """A Deployment just created has no status, no ReplicaSet and no pod yet: DEGRADED and
    in progress (waiting for the controller), not UNHEALTHY for want of replicas."""
    apiserver.cluster.lag_controller(reads=5)
    apiserver.cluster.add_deployment("default", "producer", replicas=2)

    state = await observe_one(actuator, "k8s://default/producer")

    assert state.health is Health.DEGRADED, state.detail
    assert state.rollout is not None and state.rollout.state is RolloutState.IN_PROGRESS
    assert state.record_attributes()["observed_generation"] is None


async def test_a_deployment_being_deleted_is_unknown_and_left_alone(
    apiserver: FakeApiServer, actuator: KubernetesActuator
) -> None:
    """A Deployment with a deletionTimestamp (a foreground deletion taking its pods down) is
    UNKNOWN, saying so, with no replicas to scale: no policy restarts what is being removed.
    Its ReplicaSets and pods are not read; the other Deployments are observed as usual."""
    apiserver.cluster.add_deployment("default", "producer", replicas=2)
    apiserver.cluster.add_deployment("default", "mixer", replicas=1)
    apiserver.cluster.crash_pods("default", "producer")
    stamp = "2025-03-01T09:29:00Z"
    apiserver.cluster.set_field(
        "deployments", "default", "producer", "metadata.deletionTimestamp", stamp
    )

    states = {str(s.ref): s for s in await actuator.observe()}

    deleting = states["k8s://default/producer"]
    assert deleting.health is Health.UNKNOWN
    assert deleting.detail == f"being deleted (since {stamp}): not acted on"
    assert deleting.replicas is None
    assert states["k8s://default/mixer"].health is Health.HEALTHY
    pod_lists = [c for c in apiserver.calls if c.verb == "list" and c.resource == "pods"]
    assert len(pod_lists) == 1
