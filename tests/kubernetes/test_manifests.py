"""deploy/kubernetes: valid against the Kubernetes schemas, and RBAC exactly as used."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml  # type: ignore[import-untyped]  # PyYAML ships no stubs and types-PyYAML is not a dependency

from jarvis.actuators.kubernetes.actuator import KubernetesActuator
from jarvis.config import load_settings
from jarvis.model import Action, ResourceRef, Restart, Rollback, Scale
from tests.actions import new_key
from tests.kubernetes.conftest import DEPLOY_DIR, role_rules
from tests.kubernetes.fake_apiserver import FakeApiServer

KUBERNETES_VERSION = "1.30"
MANIFESTS = sorted(p for p in DEPLOY_DIR.glob("*.yaml") if p.name != "kustomization.yaml")


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def all_documents() -> dict[str, dict[str, Any]]:
    return {
        f"{doc['kind']}/{doc['metadata']['name']}": doc for p in MANIFESTS for doc in documents(p)
    }


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifest_validates_against_the_kubernetes_schema(path: Path) -> None:
    """Each manifest is valid, in strict mode, for the Kubernetes version Jarvis targets."""
    docs = documents(path)

    assert docs, f"{path.name} holds no objects"
    for doc in docs:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_the_manifests_hold_what_a_cluster_install_needs() -> None:
    """The base holds every object a cluster install needs, wired together."""
    docs = all_documents()

    assert set(docs) == {
        "ServiceAccount/jarvis",
        "Role/jarvis-actuator",
        "RoleBinding/jarvis-actuator",
        "Role/jarvis-leader-election",
        "RoleBinding/jarvis-leader-election",
        "Deployment/jarvis",
        "Service/jarvis",
        "ConfigMap/jarvis-config",
        "NetworkPolicy/jarvis",
        "PodDisruptionBudget/jarvis",
    }
    account = docs["ServiceAccount/jarvis"]["metadata"]
    for role in ("jarvis-actuator", "jarvis-leader-election"):
        binding = docs[f"RoleBinding/{role}"]
        assert binding["roleRef"]["name"] == role
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": account["name"], "namespace": account["namespace"]}
        ]
    pod = docs["Deployment/jarvis"]["spec"]["template"]
    assert pod["spec"]["serviceAccountName"] == account["name"]
    assert docs["Service/jarvis"]["spec"]["selector"] == pod["metadata"]["labels"]


def test_the_shipped_config_is_valid_jarvis_settings(tmp_path: Path) -> None:
    """The jarvis.toml in the ConfigMap loads as Settings, in-cluster, on the Role's namespace."""
    config = all_documents()["ConfigMap/jarvis-config"]["data"]["jarvis.toml"]
    path = tmp_path / "jarvis.toml"
    path.write_text(config, encoding="utf-8")

    settings = load_settings(path)

    assert settings.kubernetes is not None
    assert settings.kubernetes.auth_mode == "in_cluster"
    role_namespace = all_documents()["Role/jarvis-actuator"]["metadata"]["namespace"]
    assert settings.kubernetes.namespaces == [role_namespace]


@pytest.mark.anyio
async def test_the_role_grants_exactly_the_calls_the_actuator_makes(
    apiserver: FakeApiServer, actuator: KubernetesActuator
) -> None:
    """Every action kind and observe, exercised once, use every rule of the Role and no other."""
    cluster = apiserver.cluster
    cluster.add_deployment("default", "producer", image="registry.local/app:v1")
    cluster.add_deployment("default", "ai-brain")
    cluster.add_hpa("default", "ai-brain", target="ai-brain", min_replicas=2, max_replicas=5)
    producer = ResourceRef("k8s", "default/producer", kind="deployment")
    brain = ResourceRef("k8s", "default/ai-brain", kind="deployment")

    await actuator.observe()
    outcomes = [
        await actuator.apply(Action(producer, Scale(replicas=3), "t", "r"), new_key()),
        await actuator.apply(Action(brain, Scale(replicas=4), "t", "r"), new_key()),
        await actuator.apply(Action(producer, Restart(), "t", "r"), new_key()),
        await actuator.apply(Action(producer, Rollback("1"), "t", "r"), new_key()),
    ]

    assert all(o.ok for o in outcomes), [o.detail for o in outcomes]
    assert {call.rule for call in apiserver.calls} == role_rules()
