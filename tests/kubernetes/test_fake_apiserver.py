"""The fake API server itself, driven by the real client: the wire behaviour the tests rely on."""

from __future__ import annotations

import json
import time

import pytest
import urllib3
from kubernetes import client

from tests.kubernetes.fake_apiserver import FakeApiServer


@pytest.fixture
def apps(apiserver: FakeApiServer, api_client: client.ApiClient) -> client.AppsV1Api:
    apiserver.cluster.add_deployment("default", "producer")
    return client.AppsV1Api(api_client)


def test_a_missing_object_is_a_404_status(apps: client.AppsV1Api) -> None:
    """Reading an absent Deployment answers 404 with a NotFound Status body."""
    with pytest.raises(client.ApiException) as caught:
        apps.read_namespaced_deployment("absent", "default")

    body = json.loads(caught.value.body or "")
    assert caught.value.status == 404
    assert (body["kind"], body["reason"], body["code"]) == ("Status", "NotFound", 404)
    assert body["details"] == {"name": "absent", "group": "apps", "kind": "deployments"}


def test_a_deleted_deployment_is_gone_with_what_it_owned(
    apiserver: FakeApiServer, apps: client.AppsV1Api
) -> None:
    """After `kubectl delete deployment` (background cascade, collected), reading it answers
    404 NotFound naming it, and its ReplicaSets and pods are gone (another's stay); its
    HPA stays."""
    apiserver.cluster.add_deployment("default", "web")
    apiserver.cluster.add_hpa("default", "web", target="web", min_replicas=1, max_replicas=3)
    apiserver.cluster.delete_deployment("default", "web")

    with pytest.raises(client.ApiException) as caught:
        apps.read_namespaced_deployment("web", "default")
    body = json.loads(caught.value.body or "")
    assert (caught.value.status, body["reason"]) == (404, "NotFound")
    assert body["details"] == {"name": "web", "group": "apps", "kind": "deployments"}
    replicasets = apps.list_namespaced_replica_set("default").items
    pods = client.CoreV1Api(apps.api_client).list_namespaced_pod("default").items
    left = [rs.metadata.name if rs.metadata else None for rs in replicasets]
    left += [pod.metadata.name if pod.metadata else None for pod in pods]
    assert left and all((name or "").startswith("producer-") for name in left), left
    hpas = client.AutoscalingV2Api(apps.api_client).list_namespaced_horizontal_pod_autoscaler(
        "default"
    )
    assert [h.metadata.name if h.metadata else None for h in hpas.items] == ["web"]


def test_a_throttled_request_is_a_429_with_retry_after(
    apiserver: FakeApiServer, api_client: client.ApiClient
) -> None:
    """The throttle fault answers 429 TooManyRequests with a Retry-After header and a Status."""
    apiserver.fault = "throttle"
    response = api_client.rest_client.pool_manager.request(
        "GET", f"{apiserver.url}/apis/apps/v1/namespaces/default/deployments", retries=False
    )
    body = json.loads(response.data)
    assert (response.status, response.headers["Retry-After"]) == (429, "1")
    assert (body["kind"], body["reason"], body["code"]) == ("Status", "TooManyRequests", 429)


def test_every_write_changes_the_resource_version_and_stale_ones_conflict(
    apps: client.AppsV1Api,
) -> None:
    """A write bumps resourceVersion; a write carrying the old one is a 409 Conflict."""
    before = apps.read_namespaced_deployment("producer", "default")
    stale = before.metadata.resource_version if before.metadata else None
    apps.patch_namespaced_deployment("producer", "default", {"metadata": {"labels": {"a": "b"}}})

    with pytest.raises(client.ApiException) as caught:
        apps.patch_namespaced_deployment(
            "producer", "default", {"metadata": {"resourceVersion": stale, "labels": {"a": "c"}}}
        )

    after = apps.read_namespaced_deployment("producer", "default")
    assert caught.value.status == 409
    assert json.loads(caught.value.body or "")["reason"] == "Conflict"
    assert after.metadata is not None
    assert after.metadata.resource_version != stale
    assert (after.metadata.labels or {})["a"] == "b"


def test_the_three_patch_types_follow_their_rfcs(apps: client.AppsV1Api) -> None:
    """Strategic merge merges containers by name, merge patch replaces lists, JSON patch tests."""
    sidecar = {"name": "proxy", "image": "envoy:1"}
    apps.patch_namespaced_deployment(
        "producer", "default", {"spec": {"template": {"spec": {"containers": [sidecar]}}}}
    )
    merged = apps.read_namespaced_deployment("producer", "default")
    assert merged.spec is not None
    assert [c.name for c in merged.spec.template.spec.containers] == ["app", "proxy"]  # type: ignore[union-attr]  # present in this test

    apps.patch_namespaced_deployment(
        "producer",
        "default",
        {"spec": {"template": {"spec": {"containers": [sidecar]}}}},
        _content_type="application/merge-patch+json",
    )
    replaced = apps.read_namespaced_deployment("producer", "default")
    assert replaced.spec is not None
    assert [c.name for c in replaced.spec.template.spec.containers] == ["proxy"]  # type: ignore[union-attr]  # present in this test

    with pytest.raises(client.ApiException) as caught:
        apps.patch_namespaced_deployment(
            "producer", "default", [{"op": "test", "path": "/spec/replicas", "value": 99}]
        )
    assert caught.value.status == 422


def test_an_unknown_patch_type_is_unsupported(apps: client.AppsV1Api) -> None:
    """A server-side apply body, which the fake does not speak, is answered 415."""
    with pytest.raises(client.ApiException) as caught:
        apps.patch_namespaced_deployment(
            "producer", "default", {"spec": {}}, _content_type="application/apply-patch+yaml"
        )

    assert caught.value.status == 415


def test_label_selectors_filter_lists(apiserver: FakeApiServer, apps: client.AppsV1Api) -> None:
    """Equality, set-based and existence selectors filter lists as on a real server."""
    apiserver.cluster.add_deployment("default", "redis", labels={"app": "redis", "tier": "db"})

    def names(selector: str) -> list[str]:
        items = apps.list_namespaced_deployment("default", label_selector=selector).items
        return [d.metadata.name or "" for d in items if d.metadata]

    assert names("app in (producer,redis)") == ["producer", "redis"]
    assert names("!jarvis.io/managed") == ["redis"]
    assert names("tier!=db") == ["producer"]
    assert names("app=producer,jarvis.io/managed=true") == ["producer"]


def test_rollout_creates_a_replicaset_per_revision_owned_by_the_deployment(
    apiserver: FakeApiServer, apps: client.AppsV1Api
) -> None:
    """A new template makes a ReplicaSet with the next revision, owned by the Deployment."""
    apps.patch_namespaced_deployment(
        "producer",
        "default",
        [{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "app:v2"}],
    )

    deployment = apps.read_namespaced_deployment("producer", "default")
    sets = apps.list_namespaced_replica_set("default", label_selector="app=producer").items

    assert deployment.metadata is not None
    revisions = {
        (rs.metadata.annotations or {})["deployment.kubernetes.io/revision"]: rs
        for rs in sets
        if rs.metadata
    }
    assert sorted(revisions) == ["1", "2"]
    assert (deployment.metadata.annotations or {})["deployment.kubernetes.io/revision"] == "2"
    for rs in sets:
        assert rs.metadata is not None
        owners = rs.metadata.owner_references or []
        assert [o.uid for o in owners] == [deployment.metadata.uid]
    assert revisions["1"].spec is not None
    assert revisions["1"].spec.replicas == 0
    assert revisions["2"].spec is not None
    assert revisions["2"].spec.replicas == 2


def test_a_forbidden_namespace_answers_rbacs_403_and_the_others_answer(
    apiserver: FakeApiServer, apps: client.AppsV1Api
) -> None:
    """`forbidden` answers every call in a namespace with RBAC's 403 Forbidden Status."""
    apiserver.forbidden.add("prod")
    with pytest.raises(client.ApiException) as caught:
        apps.list_namespaced_deployment("prod")

    body = json.loads(caught.value.body or "")
    assert caught.value.status == 403
    assert (body["reason"], body["code"]) == ("Forbidden", 403)
    assert body["message"] == (
        'deployments.apps is forbidden: User "system:serviceaccount:jarvis:jarvis" cannot '
        'list resource "deployments" in API group "apps" in the namespace "prod"'
    )
    listed = apps.list_namespaced_deployment("default").items
    assert [d.metadata.name for d in listed if d.metadata] == ["producer"]


def test_an_hpa_leaves_a_target_scaled_to_zero_alone(apiserver: FakeApiServer) -> None:
    """A Deployment at 0 replicas deactivates its HPA (min above 0), as Kubernetes' implicit
    maintenance mode: raising the HPA's min does not scale it."""
    cluster = apiserver.cluster
    cluster.add_deployment("default", "idle", replicas=0)
    cluster.add_hpa("default", "idle", target="idle", min_replicas=1, max_replicas=4)
    body = {"spec": {"minReplicas": 3}}
    cluster.patch(
        "horizontalpodautoscalers", "default", "idle", body, "application/merge-patch+json"
    )

    hpa = cluster.get("horizontalpodautoscalers", "default", "idle")
    assert cluster.deployment_spec("default", "idle")["replicas"] == 0
    assert hpa["status"]["conditions"][0]["reason"] == "ScalingDisabled"


def test_two_hpas_on_one_target_both_stand_down(apiserver: FakeApiServer) -> None:
    """Two HPAs targeting one Deployment leave it alone, each ScalingActive False with reason
    AmbiguousSelector (Kubernetes 1.26+), however their bounds are set."""
    cluster = apiserver.cluster
    cluster.add_deployment("default", "web", replicas=2)
    cluster.add_hpa("default", "web-cpu", target="web", min_replicas=1, max_replicas=4)
    cluster.add_hpa("default", "web-queue", target="web", min_replicas=3, max_replicas=6)

    reasons = [
        cluster.get("horizontalpodautoscalers", "default", name)["status"]["conditions"][0][
            "reason"
        ]
        for name in ("web-cpu", "web-queue")
    ]
    assert cluster.deployment_spec("default", "web")["replicas"] == 2
    assert reasons == ["AmbiguousSelector", "AmbiguousSelector"]


def test_a_dropped_answer_closes_the_connection_after_the_write_landed(
    apiserver: FakeApiServer, apps: client.AppsV1Api
) -> None:
    """The drop fault on writes serves the PATCH and closes the connection unanswered, once."""
    apiserver.fault, apiserver.fault_verbs, apiserver.fault_times = "drop", {"patch"}, 1
    pool = apps.api_client.rest_client.pool_manager
    url = f"{apiserver.url}/apis/apps/v1/namespaces/default/deployments/producer"
    body = json.dumps({"metadata": {"labels": {"dropped": "yes"}}}).encode()
    headers = {"Content-Type": "application/merge-patch+json"}

    with pytest.raises(urllib3.exceptions.ProtocolError):
        pool.request("PATCH", url, body=body, headers=headers, retries=False)

    read = apps.read_namespaced_deployment("producer", "default")
    assert read.metadata is not None
    assert (read.metadata.labels or {}).get("dropped") == "yes"
    assert apiserver.fault is None


def test_a_slow_answer_serves_the_write_after_the_delay_once(
    apiserver: FakeApiServer, apps: client.AppsV1Api
) -> None:
    """The slow fault on writes answers the PATCH, landed, no sooner than ``slow_seconds``,
    once; reads are not held."""
    apiserver.fault, apiserver.fault_verbs, apiserver.fault_times = "slow", {"patch"}, 1
    apiserver.slow_seconds = 1.0
    apps.read_namespaced_deployment("producer", "default")
    assert apiserver.fault == "slow"  # the read did not meet it

    started = time.monotonic()
    patched = apps.patch_namespaced_deployment(
        "producer", "default", {"metadata": {"labels": {"slow": "yes"}}}
    )

    assert time.monotonic() - started >= 1.0
    assert patched.metadata is not None
    assert (patched.metadata.labels or {}).get("slow") == "yes"
    assert apiserver.fault is None
