"""Real processes for the local-process tests, and a janitor that ends every one.

Each test's commands carry its ``tmp_path`` in their argv (``--directory`` for
the HTTP servers), so the janitor finds, by command line, every process the
test or a daemon under test started and SIGKILLs it at the end, whichever way
the test went.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from jarvis.actuators.local.actuator import LocalActuator
from jarvis.config.local import LocalServiceSettings, LocalSettings
from jarvis.loop.clock import WallClock
from tests.loopback import free_port


def server_argv(port: int, directory: Path) -> list[str]:
    """A small HTTP server on a loopback port; ``directory`` marks it as this test's."""
    return [
        sys.executable, "-m", "http.server", "--bind", "127.0.0.1",
        "--directory", str(directory), str(port),
    ]  # fmt: skip


def crashing_argv(directory: Path) -> list[str]:
    """A command that exits at once, every time, with code 3 and a line on stderr."""
    script = "import sys; print('boom: cannot start', file=sys.stderr); sys.exit(3)"
    return [sys.executable, "-c", script, str(directory)]


def web(name: str, tmp_path: Path, **extra: object) -> LocalServiceSettings:
    port = free_port()
    return LocalServiceSettings.model_validate(
        {
            "name": name,
            "command": server_argv(port, tmp_path),
            "health_url": f"http://127.0.0.1:{port}/",
            "start_timeout": 30,
            **extra,
        }
    )


def pids_with(marker: str) -> list[int]:
    """Live processes whose command line contains ``marker`` (zombies excluded)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker in cmdline and state not in {"Z", "X"}:
            found.append(int(entry.name))
    return found


def wait_http(url: str, seconds: float = 30) -> None:
    """Until ``url`` answers (at least one try, so 0 means "answers now")."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - loopback URL
                return
        except OSError:
            if time.monotonic() >= deadline:
                raise AssertionError(f"{url} never answered") from None
            time.sleep(0.1)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in {"Z", "X"}


def wait_dead(pid: int, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while alive(pid):
        if time.monotonic() >= deadline:
            raise AssertionError(f"pid {pid} is still alive")
        time.sleep(0.05)


class Lab:
    """What one test starts: actuators and processes of its own, all ended at teardown."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.state = tmp_path / "state"
        self.actuators: list[LocalActuator] = []
        self.foreign: list[subprocess.Popen[bytes]] = []

    def actuator(self, *services: LocalServiceSettings) -> LocalActuator:
        """A fresh actuator on the shared state directory: a restarted daemon, each time."""
        return self.actuator_for(LocalSettings(services=list(services), state_directory=self.state))

    def actuator_for(self, settings: LocalSettings) -> LocalActuator:
        """An actuator on settings of the test's own (on its state directory)."""
        actuator = LocalActuator(settings, WallClock())
        self.actuators.append(actuator)
        return actuator

    def start_foreign(self, argv: list[str]) -> subprocess.Popen[bytes]:
        """A process started by someone else (the test), not by Jarvis."""
        child = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.foreign.append(child)
        return child

    def end(self) -> None:
        marker = str(self.tmp_path)
        for pid in pids_with(marker):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for child in [*self.foreign, *(c for a in self.actuators for c in a.children)]:
            child.wait(timeout=30)
        deadline = time.monotonic() + 30
        while pids_with(marker) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not pids_with(marker), "a test process outlived the cleanup"


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    """Every process of the test (by its tmp_path in the command line) is SIGKILLed at
    the end and every handle reaped, however the test went."""
    made = Lab(tmp_path)
    try:
        yield made
    finally:
        made.end()
