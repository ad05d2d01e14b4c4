"""`jarvis run` as PID 1 of a PID namespace, as in the container image (which has no
init): the processes it ends that are not its own children do not stay zombies.

A real namespace (``unshare --pid --fork --mount-proc``, as root): the daemon
heals a wrapper service whose shell the test kills; the shell's worker, handed
to PID 1 when the shell died, is ended by the restart and must be reaped.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cli.conftest import jarvis_argv, jarvis_env
from tests.daemon import wait_for
from tests.local.conftest import Lab, pids_with, wait_dead
from tests.local.test_survivors import worker_pids, wrapper
from tests.loopback import free_port

UNSHARE = ("unshare", "--pid", "--fork", "--mount-proc")
"""Runs a command as PID 1 of a new PID namespace (with its own /proc)."""


def first_child(pid: int, seconds: float = 60) -> int:
    """The process ``pid`` forked (unshare's: PID 1 of the namespace), seen from here."""
    deadline = time.monotonic() + seconds
    while True:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        if children:
            return int(children[0])
        assert time.monotonic() < deadline, "unshare started nothing"
        time.sleep(0.05)


def wait_until(done: Callable[[], bool], what: str, log: Path, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}; the daemon's log ends:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)


def shells(lab: Lab) -> list[int]:
    return [pid for pid in pids_with(str(lab.tmp_path)) if _name(pid) == "sh"]


def _name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


@pytest.mark.timeout(300)  # its own waits (start 90 s, each step 60 s) pass the default 120
def test_as_pid_1_jarvis_reaps_the_worker_a_restart_ends_and_exits_0_on_sigterm(
    lab: Lab,
) -> None:
    """The killed service's orphaned worker, ended by the heal, is reaped (gone from
    /proc, not a zombie); SIGTERM to PID 1 stops the daemon, which exits 0."""
    service = wrapper(lab, free_port()).model_dump(mode="json", exclude_defaults=True)
    service["start_timeout"] = 10
    config = lab.tmp_path / "jarvis.toml"
    config.write_text(
        '[[allowlist]]\nprovider = "local"\nresources = "*"\nactions = ["restart"]\n\n'
        f"[local]\nstate_directory = {json.dumps(str(lab.state))}\n\n[[local.services]]\n"
        + "".join(f"{key} = {json.dumps(value)}\n" for key, value in service.items())
    )
    port = free_port()
    log = lab.tmp_path / "daemon.log"
    argv = jarvis_argv("run", "--http-port", str(port), "--config", str(config))
    with log.open("wb") as sink:
        unshare = subprocess.Popen(
            [*UNSHARE, *argv, "--interval", "0.5"],
            cwd=lab.tmp_path,
            env=jarvis_env(lab.tmp_path, JARVIS_HTTP__HOST="127.0.0.1"),
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    lab.foreign.append(unshare)
    pid1 = first_child(unshare.pid)
    wait_for(f"http://127.0.0.1:{port}/readyz", time.monotonic() + 90, unshare)
    ready = lab.tmp_path / "ready"
    wait_until(ready.exists, "the heal never started the service", log)
    [worker] = worker_pids(lab)
    [shell] = shells(lab)

    ready.unlink()
    subprocess.run(["kill", "-KILL", str(shell)], check=True)
    wait_dead(shell)
    wait_until(lambda: worker_pids(lab) not in ([], [worker]), "the heal never restarted it", log)
    wait_until(lambda: not Path(f"/proc/{worker}").exists(), f"pid {worker} is a zombie", log)

    subprocess.run(["kill", "-TERM", str(pid1)], check=True)
    assert unshare.wait(timeout=60) == 0, log.read_text()[-3000:]


def test_as_pid_1_jarvis_exits_with_its_command_s_status(tmp_path: Path) -> None:
    """PID 1 exits as the command did: a configuration error is still status 2, with its
    message."""
    config = tmp_path / "jarvis.toml"
    config.write_text("[local]\ncolour = 1\n")
    result = subprocess.run(
        [*UNSHARE, *jarvis_argv("config", "check", "--config", str(config))],
        cwd=tmp_path,
        env=jarvis_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "local.colour: unknown key" in result.stderr
