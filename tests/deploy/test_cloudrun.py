"""deploy/cloudrun/service.yaml: the Knative serving v1 shape Cloud Run accepts.

No schema for Cloud Run's Knative dialect ships in a package, so the rules it
enforces on a service are written out here: one container with one port,
no reserved environment names, annotation values as strings, probes on the
daemon's paths and port, secrets from Secret Manager.
"""

from __future__ import annotations

from typing import Any

from tests.deploy.conftest import DEPLOY, load_yaml

RESERVED_ENV = {"PORT", "K_SERVICE", "K_REVISION", "K_CONFIGURATION"}
TOP_LEVEL = {"apiVersion", "kind", "metadata", "spec"}
CONTAINER_KEYS = {
    "name", "image", "command", "args", "env", "ports", "resources",
    "startupProbe", "livenessProbe", "volumeMounts", "workingDir",
}  # fmt: skip


def service() -> dict[str, Any]:
    document: dict[str, Any] = load_yaml(DEPLOY / "cloudrun" / "service.yaml")
    return document


def template() -> dict[str, Any]:
    spec: dict[str, Any] = service()["spec"]["template"]
    return spec


def test_the_service_has_the_knative_serving_v1_shape() -> None:
    """A serving.knative.dev/v1 Service with one container and only keys Cloud Run knows."""
    doc = service()
    (container,) = template()["spec"]["containers"]

    assert set(doc) == TOP_LEVEL
    assert (doc["apiVersion"], doc["kind"]) == ("serving.knative.dev/v1", "Service")
    assert set(doc["spec"]) == {"template"}
    assert set(container) <= CONTAINER_KEYS
    annotations = {**doc["metadata"]["annotations"], **template()["metadata"]["annotations"]}
    assert all(isinstance(v, str) for v in annotations.values())


def test_cpu_is_always_allocated_and_a_standby_instance_runs() -> None:
    """CPU is not throttled between requests; two instances: one leads, one stands by."""
    annotations = template()["metadata"]["annotations"]

    assert annotations["run.googleapis.com/cpu-throttling"] == "false"
    assert annotations["autoscaling.knative.dev/minScale"] == "2"
    assert annotations["autoscaling.knative.dev/maxScale"] == "2"


def test_the_port_comes_from_cloud_run_and_the_probes_use_it() -> None:
    """One http1 port, no reserved env names, startup and liveness probes on /healthz there."""
    (container,) = template()["spec"]["containers"]
    (port,) = container["ports"]
    names = {e["name"] for e in container["env"]}

    assert port["name"] == "http1"
    assert not names & RESERVED_ENV
    for probe in ("startupProbe", "livenessProbe"):
        check = container[probe]["httpGet"]
        assert (check["path"], check["port"]) == ("/healthz", port["containerPort"])


def test_secrets_come_from_secret_manager_and_a_service_account_runs_it() -> None:
    """The database URL and both tokens are Secret Manager refs; the service account is set."""
    (container,) = template()["spec"]["containers"]
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e}

    assert set(refs) == {"JARVIS_DATABASE_URL", "JARVIS_ADMIN_TOKEN", "JARVIS_READ_TOKEN"}
    assert all(set(ref) == {"name", "key"} for ref in refs.values())
    assert template()["spec"]["serviceAccountName"].endswith(".iam.gserviceaccount.com")
