"""The [kubernetes] settings section, and the three ways it reaches an API server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from jarvis.actuators.base import ActuatorError
from jarvis.actuators.kubernetes.actuator import KubernetesActuator
from jarvis.config import ConfigError, load_settings
from jarvis.config.kubernetes import KubernetesSettings
from jarvis.model import ErrorKind
from tests.kubernetes.conftest import FakeClock
from tests.kubernetes.fake_apiserver import FakeApiServer


def test_defaults_read_the_kubeconfig_for_managed_deployments_in_default() -> None:
    """An empty section means kubeconfig auth, namespace "default" and the managed label."""
    settings = KubernetesSettings()

    assert settings.auth_mode == "kubeconfig"
    assert settings.namespaces == ["default"]
    assert settings.label_selector == "jarvis.io/managed=true"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"host": "https://10.0.0.1:6443"}, "host needs a token"),
        ({"token": "t"}, "token needs a host"),
        ({"in_cluster": True, "context": "prod"}, "choose one way"),
        ({"host": "https://h", "token": "t", "kubeconfig": "/k"}, "choose one way"),
        ({"namespaces": []}, "at least 1 item"),
        ({"namespaces": ["Not_A_Namespace"]}, "should match pattern"),
        ({"request_timeout": 0}, "greater than 0"),
        ({"namspaces": ["default"]}, "Extra inputs are not permitted"),
        # The client read a host without a scheme as http://host:80: the token in clear.
        ({"host": "bogus", "token": "t"}, "must be an https:// URL"),
        ({"host": "http://10.0.0.1:6443", "token": "t"}, "must be an https:// URL"),
        ({"host": "https://h:notaport", "token": "t"}, "must be an https:// URL"),
        # The API server answers 400 to these on every list: every observe failed.
        ({"label_selector": "app in (a,b"}, "label_selector: not a label selector"),
        ({"label_selector": "a=b=c"}, "label_selector: not a label selector"),
        ({"label_selector": "équipe=audio"}, "label_selector: not a label selector"),
        ({"label_selector": "a=b,"}, "label_selector: not a label selector"),
        ({"label_selector": "team = audio x"}, "label_selector: not a label selector"),
    ],
)
def test_invalid_sections_are_rejected(fields: dict[str, object], message: str) -> None:
    """Contradictory or malformed settings fail validation with a message saying why."""
    with pytest.raises(ValidationError, match=message):
        KubernetesSettings.model_validate(fields)


@pytest.mark.parametrize(
    "selector",
    [
        "",
        "jarvis.io/managed=true",
        "app in (web, api),!legacy,tier!=db,env",
        "team==audio, track notin (beta)",
        "version>2,shard<10",
        "empty=",
    ],
)
def test_label_selectors_the_api_server_parses_are_accepted(selector: str) -> None:
    """Every form of the label-selector grammar (equality, sets, existence, gt/lt) is kept."""
    assert KubernetesSettings(label_selector=selector).label_selector == selector


def test_the_toml_table_lands_in_the_settings(tmp_path: Path) -> None:
    """A [kubernetes] table in jarvis.toml becomes Settings.kubernetes."""
    path = tmp_path / "jarvis.toml"
    path.write_text(
        '[kubernetes]\nin_cluster = true\nnamespaces = ["prod", "staging"]\n'
        'label_selector = "team=audio"\n',
        encoding="utf-8",
    )

    settings = load_settings(path)

    assert settings.kubernetes is not None
    assert settings.kubernetes.auth_mode == "in_cluster"
    assert settings.kubernetes.namespaces == ["prod", "staging"]
    assert settings.kubernetes.label_selector == "team=audio"


def test_a_verification_longer_than_the_apply_timeout_is_refused(tmp_path: Path) -> None:
    """verify_seconds (with its last poll) past loop.apply_timeout would have the loop cut
    every verified restart and record it unknown: a one-line error at load instead."""
    path = tmp_path / "jarvis.toml"
    path.write_text(
        "[loop]\napply_timeout = 20\n[kubernetes]\nverify_seconds = 30\n", encoding="utf-8"
    )

    with pytest.raises(ConfigError) as raised:
        load_settings(path)

    assert (
        "kubernetes.verify_seconds + verify_poll_seconds (32 s) must be below "
        "loop.apply_timeout (20 s)"
    ) in str(raised.value)


@pytest.mark.anyio
async def test_a_kubeconfig_context_selects_the_cluster(tmp_path: Path) -> None:
    """The configured kubeconfig context, not the current one, decides which server is used."""
    with FakeApiServer(token="ctx-token") as server:
        server.cluster.add_deployment("default", "producer")
        kubeconfig = tmp_path / "config"
        kubeconfig.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "current-context": "elsewhere",
                    "clusters": [
                        {"name": "fake", "cluster": {"server": server.url}},
                        {"name": "gone", "cluster": {"server": "http://127.0.0.1:9"}},
                    ],
                    "users": [{"name": "jarvis", "user": {"token": "ctx-token"}}],
                    "contexts": [
                        {"name": "fake", "context": {"cluster": "fake", "user": "jarvis"}},
                        {"name": "elsewhere", "context": {"cluster": "gone", "user": "jarvis"}},
                    ],
                }
            ),
            encoding="utf-8",
        )
        settings = KubernetesSettings(kubeconfig=kubeconfig, context="fake")
        actuator = KubernetesActuator.from_settings(settings, clock=FakeClock())
        try:
            states = await actuator.observe()
        finally:
            await actuator.aclose()

    assert [str(s.ref) for s in states] == ["k8s://default/producer"]


def test_a_missing_kubeconfig_is_a_terminal_error(tmp_path: Path) -> None:
    """Building from a kubeconfig that does not exist fails terminally, naming the mode."""
    settings = KubernetesSettings(kubeconfig=tmp_path / "absent")

    with pytest.raises(ActuatorError, match="kubeconfig") as caught:
        KubernetesActuator.from_settings(settings, clock=FakeClock())

    assert caught.value.kind is ErrorKind.TERMINAL


def test_in_cluster_outside_a_pod_is_a_terminal_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """in_cluster without the service-account environment fails terminally at construction."""
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_PORT", raising=False)

    with pytest.raises(ActuatorError, match="in_cluster") as caught:
        KubernetesActuator.from_settings(KubernetesSettings(in_cluster=True), clock=FakeClock())

    assert caught.value.code == "ConfigError"


def test_a_plain_http_host_is_allowed_on_this_machine_only() -> None:
    """A local API server (kind, a test's stand-in) may be plain http; nothing else may."""
    local = KubernetesSettings.model_validate({"host": "http://127.0.0.1:8001", "token": "t"})

    assert local.auth_mode == "token"
