"""Children left behind by a local service's main process are ended before a new copy starts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jarvis.actuators.local.actuator import LocalActuator
from jarvis.actuators.local.process import Pidfiles
from jarvis.config.local import LocalServiceSettings
from jarvis.model import Action, ResourceRef, Restart, Start, Stop
from jarvis.model.actions import ActionParams
from tests.local.conftest import Lab, alive, pids_with, wait_dead
from tests.loopback import free_port

pytestmark = pytest.mark.anyio

KEYS = ["jarvis-" + digit * 40 for digit in "123456"]

WORKER = (
    "import signal, socket, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "s = socket.socket(); s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen(); "
    "open(sys.argv[2], 'w').close(); time.sleep(600)"
)
"""A worker that holds a port and ignores SIGTERM, as a server's forked worker may."""


def action(name: str, params: ActionParams) -> Action:
    return Action(ResourceRef("local", name), params, policy="test", reason="test")


def wrapper(lab: Lab, port: int) -> LocalServiceSettings:
    """A shell script that starts the worker in the background and waits for it."""
    script = lab.tmp_path / "service.sh"
    script.write_text(f'"{sys.executable}" -c "{WORKER}" {port} "$1" "{lab.tmp_path}" &\nwait\n')
    ready = lab.tmp_path / "ready"
    return LocalServiceSettings.model_validate(
        {
            "name": "svc",
            "command": ["/bin/sh", str(script), str(ready)],
            "health_command": ["test", "-e", str(ready)],
            "start_timeout": 20,
            "start_seconds": 1,
            "stop_timeout": 1,
        }
    )


def worker_pids(lab: Lab) -> list[int]:
    return [pid for pid in pids_with(str(lab.tmp_path)) if "socket" in _cmdline(pid)]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""


async def started(lab: Lab) -> tuple[LocalActuator, int]:
    """The wrapper service started by its actuator: (the actuator, the worker it forked)."""
    actuator = lab.actuator(wrapper(lab, free_port()))
    assert (await actuator.apply(action("svc", Start()), KEYS[0])).ok
    [worker] = worker_pids(lab)
    return actuator, worker


def crash(lab: Lab) -> None:
    """The service's main process (the shell) killed: its worker lives on."""
    record = Pidfiles(lab.state).read("svc")
    assert record is not None
    os.kill(record.pid, signal.SIGKILL)
    wait_dead(record.pid)


async def test_a_crashed_wrapper_s_worker_is_ended_before_the_restart(lab: Lab) -> None:
    """The shell dies, its worker keeps the port: a restart ends the worker, then starts anew."""
    actuator, old_worker = await started(lab)
    crash(lab)
    (lab.tmp_path / "ready").unlink()

    outcome = await actuator.apply(action("svc", Restart()), KEYS[1])
    assert outcome.ok, outcome.detail
    assert not alive(old_worker)
    assert len(worker_pids(lab)) == 1


async def test_a_restart_ends_a_worker_that_ignores_sigterm(lab: Lab) -> None:
    """The shell exits on SIGTERM, its worker does not: SIGKILL after stop_timeout."""
    actuator, old_worker = await started(lab)
    (lab.tmp_path / "ready").unlink()

    outcome = await actuator.apply(action("svc", Restart()), KEYS[1])
    assert outcome.ok, outcome.detail
    assert not alive(old_worker)
    assert len(worker_pids(lab)) == 1


async def test_stop_ends_the_survivors_of_a_crashed_service(lab: Lab) -> None:
    """STOP of a service whose main process is already gone still ends what it left behind."""
    actuator, old_worker = await started(lab)
    crash(lab)

    assert (await actuator.apply(action("svc", Stop()), KEYS[1])).ok
    assert not alive(old_worker)


def foreign_survivor(lab: Lab, service: LocalServiceSettings) -> tuple[int, int]:
    """The service's script started by someone else, its shell killed: (group id, worker)."""
    foreign = subprocess.Popen(service.command, start_new_session=True, stdin=subprocess.DEVNULL)
    lab.foreign.append(foreign)
    deadline = time.monotonic() + 30
    while not (lab.tmp_path / "ready").exists():
        assert time.monotonic() < deadline, "the foreign worker never started"
        time.sleep(0.05)
    [worker] = worker_pids(lab)
    os.kill(foreign.pid, signal.SIGKILL)
    foreign.wait(timeout=30)
    return foreign.pid, worker


async def test_a_group_jarvis_cannot_prove_is_its_own_is_left_alone(lab: Lab) -> None:
    """A pidfile naming another program's process group (a reused id) signals nothing there."""
    service = wrapper(lab, free_port())
    group, worker = foreign_survivor(lab, service)
    lab.state.mkdir()
    (lab.state / "svc.pid").write_text(
        json.dumps(
            {
                "pid": group,
                "cmdline": service.command,
                "start_ticks": 1,
                "started_at": 0,
                "key": KEYS[0],
                "token": "0" * 32,
            }
        )
    )
    assert (await lab.actuator(service).apply(action("svc", Stop()), KEYS[1])).ok
    assert alive(worker)
