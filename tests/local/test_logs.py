"""Service logs: rotated by size on observe, keeping a bounded number of old files."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from jarvis.config.local import LocalServiceSettings, LocalSettings
from jarvis.model import Start
from tests.local.conftest import Lab
from tests.local.test_actuator import KEY, action

pytestmark = pytest.mark.anyio

SLEEPER = "import time; time.sleep(600)"
CHATTY = (
    "import sys, time\n"
    "for n in range(10**9):\n"
    "    print(f'line {n:09d} ' + 'x' * 80, flush=True)\n"
    "    print(f'err {n:09d}', file=sys.stderr, flush=True)\n"
    "    time.sleep(0.002)\n"
)
"""Writes about 50 kB a second to stdout, and less to stderr, for ever."""


def grown(path: Path, size: int, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists() or path.stat().st_size <= size:
        assert time.monotonic() < deadline, f"{path} never grew past {size} bytes"
        time.sleep(0.05)


async def test_a_chatty_service_s_logs_are_rotated_and_old_ones_dropped(lab: Lab) -> None:
    """Past ``log_max_bytes`` a log moves to NAME.stdout.log.1 (older ones shift up, the
    oldest past ``log_backups`` goes), and the service writes on at the start of a new one."""
    service = LocalServiceSettings.model_validate(
        {"name": "chatty", "command": [sys.executable, "-c", CHATTY, str(lab.tmp_path)]}
    )
    settings = LocalSettings(
        services=[service], state_directory=lab.state, log_max_bytes=4000, log_backups=2
    )
    actuator = lab.actuator_for(settings)
    assert (await actuator.apply(action("chatty", Start()), KEY)).ok
    log = lab.state / "chatty.stdout.log"
    for _ in range(3):
        grown(log, 4000)
        await actuator.observe()
        assert (lab.state / "chatty.stdout.log.1").stat().st_size >= 4000
        assert (lab.state / "chatty.stderr.log.1").exists()
    assert (lab.state / "chatty.stdout.log.2").exists()
    assert not (lab.state / "chatty.stdout.log.3").exists()
    grown(log, 1000)
    # Opened for appending, the service writes at the new end: no hole of NULs.
    assert log.read_bytes().startswith(b"line ")
    assert log.stat().st_size < 1_000_000


async def test_with_log_max_bytes_0_logs_are_never_rotated(lab: Lab) -> None:
    """0 turns rotation off."""
    service = LocalServiceSettings.model_validate(
        {"name": "chatty", "command": [sys.executable, "-c", CHATTY, str(lab.tmp_path)]}
    )
    settings = LocalSettings(services=[service], state_directory=lab.state, log_max_bytes=0)
    actuator = lab.actuator_for(settings)
    assert (await actuator.apply(action("chatty", Start()), KEY)).ok
    grown(lab.state / "chatty.stdout.log", 20_000)
    await actuator.observe()
    assert not (lab.state / "chatty.stdout.log.1").exists()


async def test_observing_writes_nothing_for_a_service_never_started(lab: Lab) -> None:
    """An observe (perhaps an operator's `jarvis status`, as another user) creates neither
    the state directory nor a lock file the daemon might then be unable to open."""
    service = LocalServiceSettings.model_validate({"name": "idle", "command": ["true"]})
    [state] = await lab.actuator(service).observe()
    assert state.replicas is not None and state.replicas.running == 0
    assert not lab.state.exists()


async def test_a_log_far_past_the_limit_keeps_only_its_end(lab: Lab) -> None:
    """A log many times ``log_max_bytes`` (older than rotation, or written in a burst) is
    not copied whole, which could take the disk it is meant to save: ``.1`` keeps its
    last ``log_max_bytes``."""
    service = LocalServiceSettings.model_validate(
        {"name": "quiet", "command": [sys.executable, "-c", SLEEPER, str(lab.tmp_path)]}
    )
    settings = LocalSettings(services=[service], state_directory=lab.state, log_max_bytes=1000)
    actuator = lab.actuator_for(settings)
    assert (await actuator.apply(action("quiet", Start()), KEY)).ok
    log = lab.state / "quiet.stdout.log"
    lines = [f"line {n:06d}\n".encode() for n in range(10_000)]
    log.write_bytes(b"".join(lines))
    await actuator.observe()
    kept = (lab.state / "quiet.stdout.log.1").read_bytes()
    assert len(kept) == 1000
    assert kept.endswith(lines[-1])
    assert log.stat().st_size == 0
