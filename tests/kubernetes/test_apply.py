"""apply() against the fake API server: scale, restart, rollback, conflicts and refusals."""

from __future__ import annotations

import pytest

from jarvis.actuators.kubernetes.actuator import KubernetesActuator
from jarvis.model import (
    Action,
    ActionParams,
    Deploy,
    ErrorKind,
    Health,
    ResourceRef,
    ResourceState,
    Restart,
    Rollback,
    Scale,
)
from tests.actions import new_key
from tests.kubernetes.conftest import FakeClock
from tests.kubernetes.fake_apiserver import FakeApiServer

pytestmark = pytest.mark.anyio

PRODUCER = ResourceRef("k8s", "default/producer", kind="deployment")
STRATEGIC = "application/strategic-merge-patch+json"


def action(params: ActionParams, target: ResourceRef = PRODUCER) -> Action:
    return Action(target, params, policy="test", reason="test")


async def observe(actuator: KubernetesActuator, ref: ResourceRef = PRODUCER) -> ResourceState:
    return {s.ref: s for s in await actuator.observe()}[ref]


def set_image(apiserver: FakeApiServer, image: str) -> None:
    body = {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": image}]}}}}
    apiserver.cluster.patch("deployments", "default", "producer", body, STRATEGIC)


async def test_scale_up_and_down_patches_the_deployment_with_the_action_key(
    apiserver: FakeApiServer, actuator: KubernetesActuator
) -> None:
    """Without an HPA, scaling patches the Deployment's replicas and key; the pods follow."""
    apiserver.cluster.add_deployment("default", "producer", replicas=2)

    up = await actuator.apply(action(Scale(replicas=5)), new_key())
    after_up = await observe(actuator)
    down = await actuator.apply(action(Scale(replicas=1)), new_key())
    after_down = await observe(actuator)

    assert up.ok, up.detail
    assert down.ok, down.detail
    assert after_up.replicas is not None
    assert after_up.replicas.desired == 5
    assert after_up.replicas.running == 5
    assert after_down.replicas is not None
    assert after_down.replicas.desired == 1
    assert after_down.health is Health.HEALTHY
    writes = [(c.verb, c.resource) for c in apiserver.writes()]
    assert writes == [("patch", "deployments"), ("patch", "deployments")]


async def test_scale_to_the_current_count_writes_nothing(
    apiserver: FakeApiServer, actuator: KubernetesActuator
) -> None:
    """Scaling to the replicas already desired succeeds without a write."""
    apiserver.cluster.add_deployment("default", "producer", replicas=2)

    outcome = await actuator.apply(action(Scale(replicas=2)), new_key())

    assert outcome.ok
    assert "already" in outcome.detail
    assert apiserver.writes() == []


async def test_scale_with_an_hpa_moves_its_bounds_instead(
    apiserver: FakeApiServer, actuator: KubernetesActuator
) -> None:
    """With an HPA on the Deployment, scaling sets the HPA's min/max, not spec.replicas."""
    cluster = apiserver.cluster
    cluster.add_deployment("default", "producer", replicas=2)
    cluster.add_hpa("default", "producer-hpa", target="producer", min_replicas=2, max_replicas=4)

    up = await actuator.apply(action(Scale(replicas=6)), new_key())
    state = await observe(actuator)

    assert up.ok, up.detail
    hpa = cluster.get("horizontalpodautoscalers", "default", "producer-hpa")
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (6, 6)
    assert state.replicas is not None
    # The min is the one this scale set, so it is no floor: the next tick may scale down.
    assert (state.replicas.desired, state.replicas.min, state.replicas.max) == (6, None, 6)
    assert [(c.verb, c.resource) for c in apiserver.writes()] == [
        ("patch", "horizontalpodautoscalers")
    ]

    down = await actuator.apply(action(Scale(min_replicas=1, max_replicas=3)), new_key())

    assert down.ok, down.detail
    hpa = cluster.get("horizontalpodautoscalers", "default", "producer-hpa")
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (1, 3)
    assert cluster.deployment_spec("default", "producer")["replicas"] == 3


async def test_scaling_a_deployment_at_zero_under_an_hpa_is_refused(
    apiserver: FakeApiServer, actuator: KubernetesActuator
) -> None:
    """A Deployment scaled to 0 deactivates its HPA (Kubernetes' maintenance mode): moving the
    HPA's bounds would scale nothing yet read as a success, so it is refused, writing nothing."""
    cluster = apiserver.cluster
    cluster.add_deployment("default", "producer", replicas=0)
    cluster.add_hpa("default", "producer-hpa", target="producer", min_replicas=1, max_replicas=4)

    outcome = await actuator.apply(action(Scale(replicas=3)), new_key())

    assert (outcome.error_kind, outcome.error_code) == (ErrorKind.TERMINAL, "AutoscalingDisabled")
    assert "at 0 replicas" in (outcome.detail or "")
    assert apiserver.writes() == []
    assert cluster.deployment_spec("default", "producer")["replicas"] == 0


async def test_scaling_through_an_hpa_another_controller_owns_is_refused(
    apiserver: FakeApiServer, actuator: KubernetesActuator
) -> None:
    """An HPA with a controlling owner (KEDA's ScaledObject) has its spec rewritten from that
    owner, so new bounds would be undone: refused, writing nothing, naming the owner."""
    cluster = apiserver.cluster
    cluster.add_deployment("default", "producer", replicas=2)
    cluster.add_hpa(
        "default", "keda-hpa-producer", target="producer", min_replicas=2, max_replicas=4
    )
    owner = {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "name": "producer",
        "uid": "5f0c4f2e-0000-4000-8000-000000000001",
        "controller": True,
        "blockOwnerDeletion": True,
    }
    cluster.set_field(
        "horizontalpodautoscalers",
        "default",
        "keda-hpa-producer",
        "metadata.ownerReferences",
        [owner],
    )

    outcome = await actuator.apply(action(Scale(replicas=3)), new_key())

    assert (outcome.error_kind, outcome.error_code) == (ErrorKind.TERMINAL, "AutoscalerManaged")
    assert "ScaledObject producer (keda.sh/v1alpha1)" in (outcome.detail or "")
    assert apiserver.writes() == []


async def test_scaling_a_deployment_two_hpas_target_is_refused(
    apiserver: FakeApiServer, actuator: KubernetesActuator
) -> None:
    """Two HPAs on one Deployment both stand down (AmbiguousSelector): moving one's bounds
    would scale nothing, so the scale is refused, naming both, writing nothing."""
    cluster = apiserver.cluster
    cluster.add_deployment("default", "producer", replicas=2)
    cluster.add_hpa("default", "producer-cpu", target="producer", min_replicas=2, max_replicas=4)
    cluster.add_hpa("default", "producer-queue", target="producer", min_replicas=2, max_replicas=6)

    outcome = await actuator.apply(action(Scale(replicas=3)), new_key())

    assert (outcome.error_kind, outcome.error_code) == (ErrorKind.TERMINAL, "AmbiguousAutoscalers")
    assert "producer-cpu, producer-queue" in (outcome.detail or "")
    assert apiserver.writes() == []


async def test_scale_with_inverted_hpa_bounds_is_terminal(
    apiserver: FakeApiServer, actuator: KubernetesActuator
) -> None:
    """An HPA min above its max is refused as terminal before any write."""
    apiserver.cluster.add_deployment("default", "producer")
    apiserver.cluster.add_hpa("default", "p", target="producer", min_replicas=2, max_replicas=4)

    outcome = await actuator.apply(action(Scale(min_replicas=5, max_replicas=3)), new_key())

    assert not outcome.ok
    assert outcome.error_kind is ErrorKind.TERMINAL
    assert apiserver.writes() == []


async def test_restart_heals_a_crash_loop_like_kubectl_rollout_restart(
    apiserver: FakeApiServer, actuator: KubernetesActuator, clock: FakeClock
) -> None:
    """A crash-looping Deployment is restarted by a restartedAt template annotation."""
    apiserver.cluster.add_deployment("default", "producer")
    apiserver.cluster.crash_pods("default", "producer")
    assert (await observe(actuator)).health is Health.UNHEALTHY

    key = new_key()
    outcome = await actuator.apply(action(Restart()), key)
    state = await observe(actuator)

    assert outcome.ok, outcome.detail
    annotations = apiserver.cluster.deployment_spec("default", "producer")["template"]["metadata"][
        "annotations"
    ]
    assert annotations == {
        "kubectl.kubernetes.io/restartedAt": "2025-03-01T09:30:00Z",
        "jarvis.io/action-key": key,
    }
    assert state.health is Health.HEALTHY
    assert state.record_attributes()["revision"] == 2
    patch = apiserver.writes()[0]
    assert (patch.resource, patch.content_type) == ("deployments", STRATEGIC)


async def test_bad_deploy_is_rolled_back_to_the_previous_revision_template(
    apiserver: FakeApiServer, actuator: KubernetesActuator
) -> None:
    """Rollback restores the previous version's template, as revision 3, and heals."""
    apiserver.cluster.add_deployment("default", "producer", image="registry.local/app:v1")
    apiserver.cluster.fail_image("registry.local/app:v2", "CrashLoopBackOff")
    good = await observe(actuator)
    set_image(apiserver, "registry.local/app:v2")
    bad = await observe(actuator)
    assert bad.health is Health.UNHEALTHY
    assert bad.record_attributes()["previous_version"] == good.version

    outcome = await actuator.apply(action(Rollback("")), new_key())
    state = await observe(actuator)

    assert outcome.ok, outcome.detail
    assert (outcome.detail or "").startswith(
        "rolled back from revision 2 to the template of revision 1;"
    )
    assert state.health is Health.HEALTHY
    assert state.version == good.version
    assert state.record_attributes()["images"] == ["registry.local/app:v1"]
    assert state.record_attributes()["revision"] == 3
    assert state.record_attributes()["previous_version"] == bad.version
    template = apiserver.cluster.deployment_spec("default", "producer")["template"]
    assert "pod-template-hash" not in template["metadata"]["labels"]
    patch = apiserver.writes()[-1]
    assert (patch.resource, patch.content_type) == ("deployments", "application/json-patch+json")


async def test_a_restart_is_verified_on_the_new_pods_even_before_the_controller_caught_up(
    apiserver: FakeApiServer, actuator: KubernetesActuator
) -> None:
    """Read right after the patch, the Deployment is not yet observed (old revision, old
    crashing pods): that says nothing of the new pods, so the restart is not failed on it."""
    apiserver.cluster.add_deployment("default", "producer")
    apiserver.cluster.crash_pods("default", "producer")
    apiserver.cluster.lag_controller(reads=1)

    outcome = await actuator.apply(action(Restart()), new_key())

    assert outcome.ok, outcome.detail
    assert "rollout complete" in (outcome.detail or "")
    assert (await observe(actuator)).health is Health.HEALTHY


async def test_rollback_of_a_paused_deployment_is_refused_and_writes_nothing(
    apiserver: FakeApiServer, actuator: KubernetesActuator
) -> None:
    """A paused Deployment (an operator staging edits before `kubectl rollout resume`) is not
    rolled back, as `kubectl rollout undo` refuses it: terminal, and its template untouched."""
    apiserver.cluster.add_deployment("default", "producer", image="registry.local/app:v1")
    set_image(apiserver, "registry.local/app:v2")
    apiserver.cluster.patch(
        "deployments", "default", "producer", {"spec": {"paused": True}}, STRATEGIC
    )
    staged = apiserver.cluster.deployment_spec("default", "producer")["template"]

    outcome = await actuator.apply(action(Rollback("")), new_key())

    assert (outcome.error_kind, outcome.error_code) == (ErrorKind.TERMINAL, "Paused")
    assert "paused" in (outcome.detail or "")
    assert apiserver.writes() == []
    assert apiserver.cluster.deployment_spec("default", "producer")["template"] == staged


@pytest.mark.parametrize(
    "params",
    [Scale(replicas=5), Restart(), Rollback("")],
    ids=["scale", "restart", "rollback"],
)
async def test_a_deployment_being_deleted_is_not_changed(
    apiserver: FakeApiServer, actuator: KubernetesActuator, params: ActionParams
) -> None:
    """A Deployment with a deletionTimestamp (foreground deletion waiting on its pods) is
    going away and its controller only syncs status: no change is written, gone."""
    apiserver.cluster.add_deployment("default", "producer", image="registry.local/app:v1")
    set_image(apiserver, "registry.local/app:v2")
    stamp = "2025-03-01T09:29:00Z"
    apiserver.cluster.set_field(
        "deployments", "default", "producer", "metadata.deletionTimestamp", stamp
    )

    outcome = await actuator.apply(action(params), new_key())

    assert (outcome.error_kind, outcome.error_code) == (ErrorKind.GONE, "Deleting")
    assert f"is being deleted (since {stamp})" in (outcome.detail or "")
    assert apiserver.writes() == []


async def test_rollback_to_an_explicit_version_or_revision(
    apiserver: FakeApiServer, actuator: KubernetesActuator
) -> None:
    """Rollback goes to the named version (or revision number), skipping newer ones."""
    apiserver.cluster.add_deployment("default", "producer", image="registry.local/app:v1")
    v1 = (await observe(actuator)).version
    set_image(apiserver, "registry.local/app:v2")
    v2 = (await observe(actuator)).version
    set_image(apiserver, "registry.local/app:v3")
    v3 = (await observe(actuator)).version

    by_version = await actuator.apply(action(Rollback(str(v1))), new_key())
    at_v1 = await observe(actuator)
    by_revision = await actuator.apply(action(Rollback("3")), new_key())
    at_v3 = await observe(actuator)

    assert by_version.ok, by_version.detail
    assert at_v1.version == v1
    assert at_v1.record_attributes()["versions_available"] == [v3, v2]
    assert by_revision.ok, by_revision.detail
    assert at_v3.version == v3
    assert at_v3.record_attributes()["revision"] == 5


async def test_rollback_to_an_unknown_revision_is_terminal(
    apiserver: FakeApiServer, actuator: KubernetesActuator
) -> None:
    """A revision with no ReplicaSet cannot be rolled back to, and nothing is written."""
    apiserver.cluster.add_deployment("default", "producer")

    missing = await actuator.apply(action(Rollback("7")), new_key())
    unknown = await actuator.apply(action(Rollback("app:v0#00000000")), new_key())
    no_history = await actuator.apply(action(Rollback("")), new_key())

    assert (missing.error_kind, missing.error_code) == (ErrorKind.TERMINAL, "RevisionNotFound")
    assert (unknown.error_kind, unknown.error_code) == (ErrorKind.TERMINAL, "RevisionNotFound")
    assert (no_history.error_kind, no_history.error_code) == (ErrorKind.TERMINAL, "NoRevision")
    assert apiserver.writes() == []


@pytest.mark.parametrize("wanted", ["²", "1" * 5000])
async def test_a_rollback_to_a_revision_number_int_refuses_is_terminal_not_a_connection_error(
    apiserver: FakeApiServer, actuator: KubernetesActuator, wanted: str
) -> None:
    """An operator's ``--to`` that looks like digits but is no int64 ("²", 5000 digits) names
    no revision: terminal RevisionNotFound, not a temporary ConnectionError retried 3 times."""
    apiserver.cluster.add_deployment("default", "producer")

    outcome = await actuator.apply(action(Rollback(wanted)), new_key())

    assert (outcome.error_kind, outcome.error_code) == (ErrorKind.TERMINAL, "RevisionNotFound")
    assert apiserver.writes() == []


async def test_a_conflict_is_re_read_and_retried_once(
    apiserver: FakeApiServer, actuator: KubernetesActuator
) -> None:
    """A 409 from a concurrent writer leads to one re-read and a successful second write."""
    apiserver.cluster.add_deployment("default", "producer", replicas=2)
    apiserver.cluster.interfere("deployments", "default", "producer", times=1)

    outcome = await actuator.apply(action(Scale(replicas=4)), new_key())

    assert outcome.ok, outcome.detail
    assert apiserver.cluster.deployment_spec("default", "producer")["replicas"] == 4
    reads = [c for c in apiserver.calls if c.verb == "get" and c.resource == "deployments"]
    assert len(reads) == 2
    assert len(apiserver.writes()) == 2


async def test_a_second_conflict_is_a_temporary_failure(
    apiserver: FakeApiServer, actuator: KubernetesActuator
) -> None:
    """Two 409s in a row give up for this tick as a temporary Conflict failure."""
    apiserver.cluster.add_deployment("default", "producer")
    apiserver.cluster.interfere("deployments", "default", "producer", times=2)

    outcome = await actuator.apply(action(Restart()), new_key())

    assert not outcome.ok
    assert (outcome.error_kind, outcome.error_code) == (ErrorKind.TEMPORARY, "Conflict")
    assert len(apiserver.writes()) == 2


async def test_a_missing_deployment_is_gone(
    apiserver: FakeApiServer, actuator: KubernetesActuator
) -> None:
    """Acting on a Deployment that does not exist fails as gone, with NotFound."""
    outcome = await actuator.apply(action(Restart()), new_key())

    assert (outcome.error_kind, outcome.error_code) == (ErrorKind.GONE, "NotFound")
    assert 'deployments.apps "producer" not found' in outcome.detail


@pytest.mark.parametrize(
    "params",
    [Scale(replicas=5), Restart(), Rollback("")],
    ids=["scale", "restart", "rollback"],
)
async def test_a_deployment_deleted_since_observe_is_gone(
    apiserver: FakeApiServer, actuator: KubernetesActuator, params: ActionParams
) -> None:
    """A Deployment observed, then deleted (`kubectl delete`) before the apply: the API
    server's 404 names it, and the action fails as gone with no write."""
    apiserver.cluster.add_deployment("default", "producer", image="registry.local/app:v1")
    set_image(apiserver, "registry.local/app:v2")
    assert [str(s.ref) for s in await actuator.observe()] == [str(action(params).target)]
    apiserver.cluster.delete_deployment("default", "producer")

    outcome = await actuator.apply(action(params), new_key())

    assert (outcome.error_kind, outcome.error_code) == (ErrorKind.GONE, "NotFound")
    assert apiserver.writes() == []


async def test_targets_outside_the_managed_namespaces_are_refused_without_a_call(
    apiserver: FakeApiServer, actuator: KubernetesActuator
) -> None:
    """A namespace not in the settings, or an unsupported kind, is refused before any request."""
    other = ResourceRef("k8s", "kube-system/coredns", kind="deployment")

    foreign = await actuator.apply(action(Restart(), target=other), new_key())
    deploy = await actuator.apply(action(Deploy("x:1")), new_key())

    assert (foreign.error_kind, foreign.error_code) == (ErrorKind.TERMINAL, "NotManaged")
    assert (deploy.error_kind, deploy.error_code) == (ErrorKind.TERMINAL, "Unsupported")
    assert apiserver.calls == []


async def test_a_restart_whose_new_pods_crash_is_a_temporary_failure(
    apiserver: FakeApiServer, actuator: KubernetesActuator
) -> None:
    """When the restarted pods crash-loop too, the restart is reported failed, for the budget."""
    apiserver.cluster.fail_image("registry.local/app:v1", "CrashLoopBackOff")
    apiserver.cluster.add_deployment("default", "producer")

    outcome = await actuator.apply(action(Restart()), new_key())

    assert not outcome.ok
    assert (outcome.error_kind, outcome.error_code) == (ErrorKind.TEMPORARY, "RolloutFailed")
    assert "CrashLoopBackOff" in outcome.detail
    assert len(apiserver.writes()) == 1


async def test_a_rollout_still_going_when_verification_ends_is_a_success(
    apiserver: FakeApiServer, actuator: KubernetesActuator, clock: FakeClock
) -> None:
    """New pods that are slow but not failing leave the restart a success, noted as in progress."""
    apiserver.cluster.fail_image("registry.local/app:v1", "ContainerCreating")
    apiserver.cluster.add_deployment("default", "producer")
    started = clock.now()

    outcome = await actuator.apply(action(Restart()), new_key())

    assert outcome.ok, outcome.detail
    assert "still in progress after 10s" in outcome.detail
    assert (clock.now() - started).total_seconds() >= 10


async def test_rolling_back_to_the_running_version_is_skipped(
    apiserver: FakeApiServer, actuator: KubernetesActuator
) -> None:
    """A rollback to the version already running succeeds without a write."""
    apiserver.cluster.add_deployment("default", "producer")
    running = (await observe(actuator)).version

    outcome = await actuator.apply(action(Rollback(str(running))), new_key())

    assert outcome.ok, outcome.detail
    assert outcome.detail.startswith("skipped:")
    assert apiserver.writes() == []


async def test_a_replayed_key_changes_each_object_once(
    apiserver: FakeApiServer, actuator: KubernetesActuator
) -> None:
    """Scale, HPA bounds, restart and rollback each write their key; its replay writes nothing."""
    cluster = apiserver.cluster
    cluster.add_deployment("default", "producer", replicas=2, image="registry.local/app:v1")
    cluster.add_deployment("default", "ai-brain")
    cluster.add_hpa("default", "ai-brain", target="ai-brain", min_replicas=2, max_replicas=5)
    brain = ResourceRef("k8s", "default/ai-brain", kind="deployment")
    set_image(apiserver, "registry.local/app:v2")
    changes = [
        action(Scale(replicas=4)),
        action(Scale(replicas=4), target=brain),
        action(Restart()),
        action(Rollback("")),
    ]

    keys = [new_key() for _ in changes]
    for change, key in zip(changes, keys, strict=True):
        assert (await actuator.apply(change, key)).ok
        writes = len(apiserver.writes())
        replay = await actuator.apply(change, key)
        assert replay.ok and "already" in replay.detail, replay.detail
        assert len(apiserver.writes()) == writes

    hpa = cluster.get("horizontalpodautoscalers", "default", "ai-brain")
    assert hpa["metadata"]["annotations"]["jarvis.io/action-key"] == keys[1]


async def test_a_replay_does_not_undo_a_later_manual_scale(
    apiserver: FakeApiServer, actuator: KubernetesActuator
) -> None:
    """Scaled to 4 under a key, set back to 2 by hand: the key's replay leaves 2 alone."""
    apiserver.cluster.add_deployment("default", "producer", replicas=2)
    key = new_key()
    assert (await actuator.apply(action(Scale(replicas=4)), key)).ok
    body = {"spec": {"replicas": 2}}
    apiserver.cluster.patch("deployments", "default", "producer", body, STRATEGIC)

    replay = await actuator.apply(action(Scale(replicas=4)), key)

    assert replay.ok and "already applied" in replay.detail
    producer = apiserver.cluster.get("deployments", "default", "producer")
    assert producer["spec"]["replicas"] == 2
    assert producer["metadata"]["annotations"]["jarvis.io/action-key"] == key


async def test_the_action_key_annotation_is_not_part_of_the_version(
    apiserver: FakeApiServer, actuator: KubernetesActuator
) -> None:
    """A restart's template key, like restartedAt, leaves the version fingerprint unchanged."""
    apiserver.cluster.add_deployment("default", "producer")
    before = await observe(actuator)

    assert (await actuator.apply(action(Restart()), new_key())).ok
    after = await observe(actuator)

    assert after.version == before.version
    assert after.attributes["revision"] == 2
