"""Timeouts that cannot work together are named by `jarvis config check` and `jarvis run`.

``cloudrun.operation_timeout`` raised to a minute with ``loop.apply_timeout`` left at
20 s passed `config check` and ran: every Cloud Run update still rolling out at 20 s
was cut there and counted as timed out. Both commands now say so in one line naming
both keys and values (`jarvis.config.timing`), and still start: such a setup ran before.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.conftest import Jarvis, jarvis_env

CLOUD_RUN = """
[cloudrun]
project = "demo-project"
region = "europe-west1"
services = ["api"]
credentials = "anonymous"
api_endpoint = "http://127.0.0.1:9"
operation_timeout = 60
"""
WARNING = (
    "cloudrun.operation_timeout (60 s) is not shorter than loop.apply_timeout (20 s): "
    "an update still waiting at 20 s is cut there and the action counts as timed out; "
    "raise loop.apply_timeout, or lower cloudrun.operation_timeout"
)


def test_an_operation_longer_than_an_apply_is_named_by_check_and_run(
    jarvis: Jarvis, tmp_path: Path
) -> None:
    """`config check` prints the one warning and exits 0; `run` logs it once and runs."""
    config = tmp_path / "jarvis.toml"
    config.write_text(CLOUD_RUN)
    env = jarvis_env(tmp_path, JARVIS_CONFIG=str(config))

    check = jarvis("config", "check", env=env)
    assert check.returncode == 0, check.stderr
    assert f"warning: {WARNING}" in check.stderr.splitlines(), check.stderr
    shown = jarvis("config", "check", "--json", env=env)
    assert json.loads(shown.stdout)["warnings"] == [WARNING]

    run = jarvis("run", "--ticks", "1", "--interval", "0.05", "--http-port", "0", env=env)
    assert run.returncode == 0, run.stderr
    logged = [json.loads(line) for line in run.stderr.splitlines() if line.startswith("{")]
    warned = [line for line in logged if line.get("event") == "timeouts do not fit"]
    assert [line["detail"] for line in warned] == [WARNING]


def test_the_defaults_are_named_by_neither(jarvis: Jarvis, tmp_path: Path) -> None:
    """No configuration, no warning: the defaults fit together."""
    check = jarvis("config", "check")
    assert check.returncode == 0, check.stderr
    assert "warning" not in check.stderr
