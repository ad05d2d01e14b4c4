"""The Dockerfile: hadolint clean, and the user it runs as is the one the manifests name."""

from __future__ import annotations

import re
import subprocess

from tests.deploy.conftest import DEPLOY, ROOT, load_yaml, venv_tool

DOCKERFILE = ROOT / "Dockerfile"


def test_hadolint_finds_nothing() -> None:
    """hadolint reports no finding at any level, info included."""
    result = subprocess.run(
        [venv_tool("hadolint"), "--no-color", "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
    )

    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_the_image_runs_as_the_numeric_user_the_deployment_requires() -> None:
    """USER is numeric and matches the Deployment's runAsUser and runAsGroup."""
    users = re.findall(r"^USER\s+(\S+)$", DOCKERFILE.read_text(encoding="utf-8"), re.MULTILINE)
    pod = load_yaml(DEPLOY / "kubernetes" / "base" / "deployment.yaml")["spec"]["template"]["spec"]
    context = pod["securityContext"]

    assert users == [f"{context['runAsUser']}:{context['runAsGroup']}"]
