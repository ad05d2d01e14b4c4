"""Health commands that misbehave: one that hangs with children, one that floods stderr."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from jarvis.actuators.local.health import check
from jarvis.config.local import LocalServiceSettings
from tests.local.conftest import Lab, server_argv, wait_dead

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
    service = with_health_command(lab, script)
    passed, detail = await check(service, service.process_environment(os.environ))
    assert not passed
    assert detail.startswith("health command exited 1: ")
    assert detail.endswith(" disk full")
    assert len(detail) < 1000


async def test_a_hung_health_command_is_ended_with_the_children_it_forked(lab: Lab) -> None:
    """At its timeout the check kills the whole health command, children included."""
    marker = Path(lab.tmp_path) / "child.pid"
    # A shell starts in milliseconds even on a loaded machine: the child exists well
    # before the timeout, which is what this test needs to be about.
    service = LocalServiceSettings.model_validate(
        {
            "name": "api",
            "command": server_argv(0, lab.tmp_path),
            "health_command": ["/bin/sh", "-c", f"sleep 300 & echo $! > '{marker}'; wait"],
            "health_timeout": 5.0,
        }
    )
    passed, detail = await check(service, service.process_environment(os.environ))
    assert not passed
    assert detail == "health command did not finish within 5 s"
    wait_dead(int(marker.read_text()), seconds=10)
