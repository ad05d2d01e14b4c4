"""Health commands that misbehave: one that hangs with children, one that floods stderr."""

from __future__ import annotations

import sys

import pytest

from jarvis.actuators.local.health import check
from jarvis.config.local import LocalServiceSettings
from tests.local.conftest import Lab, server_argv

pytestmark = pytest.mark.anyio


def with_health_command(lab: Lab, script: str, **extra: object) -> LocalServiceSettings:
    """A service whose health command is ``script``, marked with the test directory."""
    return LocalServiceSettings.model_validate(
        {
            "name": "api",
            "command": server_argv(0, lab.tmp_path),
            "health_command": [sys.executable, "-c", script, str(lab.tmp_path)],
            **extra,
        }
    )


async def test_a_health_command_flooding_stderr_gives_a_short_detail(lab: Lab) -> None:
    """A failing check's detail keeps the end of its last stderr line, not megabytes of it."""
    script = "import sys; sys.stderr.write('x' * 3_000_000 + ' disk full'); sys.exit(1)"
    passed, detail = await check(with_health_command(lab, script))
    assert not passed
    assert detail.startswith("health command exited 1: ")
    assert detail.endswith(" disk full")
    assert len(detail) < 1000
