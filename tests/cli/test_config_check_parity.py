"""`jarvis config check` refuses what `jarvis run` would refuse at start, with the same line.

An operator runs `config check` before a deploy precisely so that the daemon does
not stop at start: a configuration it passes must not be one `run` refuses.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.conftest import Jarvis, jarvis_env

RUN = ("run", "--ticks", "1", "--interval", "0.05", "--http-port", "0")


def refusals(jarvis: Jarvis, env: dict[str, str], *options: str) -> list[str]:
    """The error `config check` and `run` each print, having checked each exits 2 without a
    traceback and with one error."""
    lines = []
    for command in (("config", "check"), RUN):
        result = jarvis(*options, *command, env=env, timeout=120)
        assert result.returncode == 2, (command, result.stderr)
        assert "Traceback" not in result.stderr, result.stderr
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1, result.stderr
        lines.append(errors[0])
    return lines


def test_a_kubernetes_lease_on_sqlite_fails_config_check_as_it_fails_run(
    jarvis: Jarvis, tmp_path: Path
) -> None:
    """On SQLite there is no lease to elect with: `config check` says so, as `run` does."""
    env = jarvis_env(tmp_path, JARVIS_LEASE__BACKEND="kubernetes")
    check, run = refusals(jarvis, env)
    assert check == run
    assert 'lease.backend = "kubernetes"' in check
    assert "SQLite" in check


def test_a_missing_stripe_key_fails_config_check_as_it_fails_run(
    jarvis: Jarvis, tmp_path: Path
) -> None:
    """The Stripe secret key is read from the environment: unset, both commands name it."""
    (tmp_path / "c.toml").write_text(
        "[customers]\nenabled = true\n[customers.stripe]\nsecret_key_env = 'H74_NO_STRIPE_KEY'\n"
    )
    env = jarvis_env(tmp_path)
    env.pop("H74_NO_STRIPE_KEY", None)
    check, run = refusals(jarvis, env, "--config", "c.toml")
    assert check == run
    assert "customers.stripe: environment variable H74_NO_STRIPE_KEY is not set" in check


@pytest.mark.parametrize(
    "section",
    ["[kubernetes]\nin_cluster = true\n", "[kubernetes]\nkubeconfig = 'absent/kubeconfig'\n"],
)
def test_an_unusable_kubernetes_client_fails_config_check_as_it_fails_run(
    jarvis: Jarvis, tmp_path: Path, section: str
) -> None:
    """No service account outside a pod, or no kubeconfig file: one line naming the section."""
    (tmp_path / "c.toml").write_text(section)
    env = jarvis_env(tmp_path)
    for variable in ("KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"):
        env.pop(variable, None)
    check, run = refusals(jarvis, env, "--config", "c.toml")
    assert check == run
    assert "kubernetes: cannot configure the Kubernetes client" in check


def test_a_kubernetes_lease_with_no_cluster_to_reach_fails_config_check(
    jarvis: Jarvis, tmp_path: Path
) -> None:
    """Without [kubernetes] the Lease is the pod's cluster: outside a pod, `config check`
    says the client cannot be configured, before `run` would meet it after opening the store."""
    env = jarvis_env(
        tmp_path,
        JARVIS_DATABASE_URL="postgresql+asyncpg://nobody@127.0.0.1:1/none",  # never connected to
        JARVIS_LEASE__BACKEND="kubernetes",
    )
    for variable in ("KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"):
        env.pop(variable, None)
    result = jarvis("config", "check", env=env)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert 'lease.backend = "kubernetes": cannot configure the Kubernetes client (in_cluster)' in (
        result.stderr
    )


def test_cloud_run_without_credentials_fails_config_check_as_it_fails_run(
    jarvis: Jarvis, tmp_path: Path
) -> None:
    """No application-default credentials: one line naming [cloudrun] once, from both."""
    (tmp_path / "c.toml").write_text(
        "[cloudrun]\nproject = 'my-proj'\nregion = 'us-central1'\nservices = ['api']\n"
    )
    env = jarvis_env(tmp_path, HOME=str(tmp_path), NO_GCE_CHECK="True")
    for variable in ("GOOGLE_APPLICATION_CREDENTIALS", "CLOUDSDK_CONFIG"):
        env.pop(variable, None)
    check, run = refusals(jarvis, env, "--config", "c.toml")
    assert check == run
    assert "error: cloudrun: no application-default credentials" in check
