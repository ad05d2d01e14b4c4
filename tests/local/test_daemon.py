"""`jarvis run` with two local services: one healed, one escalated, and a restart
of the daemon that finds the running process again instead of starting a second.

Real processes throughout: the daemon, a small HTTP server it starts, SIGKILLed
by the test, and a command that exits at once every time. Progress is read
from the event log (`jarvis events --json`) with generous deadlines.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from jarvis.actuators.local.process import Pidfiles
from tests.cli.conftest import jarvis_argv, jarvis_env
from tests.daemon import Daemon, running
from tests.local.conftest import (
    Lab,
    alive,
    crashing_argv,
    pids_with,
    wait_dead,
    wait_http,
    web,
)

Events = list[dict[str, Any]]


def write_config(lab: Lab) -> tuple[Path, str]:
    """Two services, and an allow-list entry that lets Jarvis restart them."""
    api = web("web", lab.tmp_path)
    assert api.health_url is not None
    toml = f"""
[[allowlist]]
provider = "local"
resources = "*"
actions = ["restart"]

[local]
state_directory = {json.dumps(str(lab.state))}

[[local.services]]
name = "web"
command = {json.dumps(api.command)}
health_url = "{api.health_url}"
start_timeout = 10

[[local.services]]
name = "crashy"
command = {json.dumps(crashing_argv(lab.tmp_path))}
start_timeout = 10
"""
    path = lab.tmp_path / "jarvis.toml"
    path.write_text(toml)
    return path, api.health_url


@contextmanager
def daemon(lab: Lab, config: Path) -> Iterator[Daemon]:
    """`jarvis run` until the block ends; then SIGTERM, and it must exit 0."""
    env = jarvis_env(lab.tmp_path, JARVIS_HTTP__HOST="127.0.0.1")
    with running(lab.tmp_path, env, "--config", str(config), "--interval", "0.5") as started:
        yield started
        output = started.stop()
    assert started.process.returncode == 0, output[-3000:]


def events(lab: Lab, config: Path) -> Events:
    result = subprocess.run(
        jarvis_argv("events", "--json", "--limit", "5000", "--config", str(config)),
        cwd=lab.tmp_path,
        env=jarvis_env(lab.tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return [json.loads(line) for line in result.stdout.splitlines()]


def wait_events(
    lab: Lab, config: Path, running: Daemon, done: Callable[[Events], bool], what: str
) -> Events:
    deadline = time.monotonic() + 120
    while True:
        seen = events(lab, config)
        if done(seen):
            return seen
        if time.monotonic() >= deadline:
            tail = running.output()[-3000:]
            raise AssertionError(f"never saw {what}; daemon log ends:\n{tail}")
        time.sleep(0.5)


def count(seen: Events, kind: str, resource: str | None = None, after: int = 0) -> int:
    return sum(
        1
        for e in seen
        if e["kind"] == kind and e["id"] > after and (resource is None or e["resource"] == resource)
    )


@pytest.mark.timeout(600)  # two daemons, 20 s each to start under load, and `jarvis events` runs
def test_jarvis_run_heals_one_local_service_escalates_the_other_and_finds_it_again(
    lab: Lab,
) -> None:
    """Heal starts the server and restarts it after a SIGKILL; the crashing command
    escalates after its retry budget; a restarted daemon starts no second copy."""
    config, url = write_config(lab)
    files = Pidfiles(lab.state)
    with daemon(lab, config) as first_run:
        wait_events(
            lab, config, first_run,
            lambda s: count(s, "action.applied", "local://web") >= 1
            and count(s, "action.escalated", "local://crashy") >= 1,
            "web started and crashy escalated",
        )  # fmt: skip
        wait_http(url)
        first = files.read("web")
        assert first is not None
        os.kill(first.pid, signal.SIGKILL)
        wait_dead(first.pid)
        seen = wait_events(
            lab, config, first_run,
            lambda s: count(s, "action.applied", "local://web") >= 2,
            "web restarted after the SIGKILL",
        )  # fmt: skip
        wait_http(url)
        second = files.read("web")
        assert second is not None and second.pid != first.pid
    assert count(seen, "action.applied", "local://crashy") == 0
    failures = [
        e for e in seen if e["kind"] == "action.failed" and e["resource"] == "local://crashy"
    ]
    assert len(failures) == 3
    assert "exited with code 3" in failures[0]["payload"]["detail"]
    assert alive(second.pid), "the service outlives the daemon"

    before = max(e["id"] for e in events(lab, config))
    with daemon(lab, config) as second_run:
        after = wait_events(
            lab, config, second_run,
            lambda s: count(s, "tick.finished", after=before) >= 5,
            "five ticks of the restarted daemon",
        )  # fmt: skip
    assert count(after, "action.started", "local://web", after=before) == 0
    assert count(after, "action.started", "local://crashy", after=before) == 0
    assert files.read("web") == second
    assert pids_with(" ".join(second.cmdline)) == [second.pid]
