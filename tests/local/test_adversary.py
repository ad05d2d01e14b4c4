"""Local services that misbehave: what Jarvis does when a command works against it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from jarvis.actuators.local.health import check
from jarvis.actuators.local.process import INSTANCE_VARIABLE
from jarvis.config.local import LocalServiceSettings
from jarvis.model import Start
from tests.local.conftest import Lab, pids_with
from tests.local.test_actuator import KEY, action

pytestmark = pytest.mark.anyio

SLEEPER = "import time; time.sleep(600)"


def daemonizing(lab: Lab, detach: str = "") -> LocalServiceSettings:
    """A command that forks its server into the background and exits 0 (``--daemonize``);
    with ``detach="setsid"``, the server leaves the group into a session of its own, as a
    classic daemon's double fork does."""
    script = lab.tmp_path / "daemonize.sh"
    script.write_text(f'{detach} "{sys.executable}" -c "{SLEEPER}" "{lab.tmp_path}" &\nexit 0\n')
    return LocalServiceSettings.model_validate(
        {"name": "bg", "command": ["/bin/sh", str(script)], "stop_timeout": 2}
    )


def sleepers(lab: Lab) -> list[int]:
    return [pid for pid in pids_with(str(lab.tmp_path)) if "sleep(600)" in _cmdline(pid)]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""


@pytest.mark.parametrize("detach", ["", "setsid"])
async def test_a_command_that_forks_and_exits_fails_and_leaves_nothing_running(
    lab: Lab, detach: str
) -> None:
    """A daemonizing command fails its start (it exited), and what it forked, in its
    process group or in a session of its own, is ended with the failed start, not left
    running unwatched (for ever, once escalated); the detail says why."""
    outcome = await lab.actuator(daemonizing(lab, detach)).apply(action("bg", Start()), KEY)
    assert not outcome.ok
    assert "exited with code 0" in outcome.detail
    assert "it left 1 process running, now ended" in outcome.detail, outcome.detail
    assert sleepers(lab) == []


async def test_what_it_forked_is_ended_though_caught_mid_exec_as_the_command_exits(
    lab: Lab,
) -> None:
    """A process in the middle of exec shows no environment, so no token, for a few
    milliseconds (over 20 at times): a daemonizing command's server caught there as the
    command exited was not seen, and was left running unwatched. Here the server shows no
    environment for 0.2 s (started with none, then exec'd with the service's token), and
    is still found and ended with the failed start."""
    # A shell with no environment waits 0.2 s, then execs the server with the token. A
    # shell, not Python, for that wait: the window must not stretch with an interpreter's
    # start-up on a loaded machine (CI once saw it outlast the failed start's 2 s of looks).
    late = (
        f'sleep 0.2; exec env {INSTANCE_VARIABLE}="$1" "{sys.executable}" -c "{SLEEPER}"'
        f' "{lab.tmp_path}"'
    )
    script = lab.tmp_path / "daemonize.sh"
    script.write_text(f"env -i /bin/sh -c '{late}' late \"${INSTANCE_VARIABLE}\" &\nexit 0\n")
    service = LocalServiceSettings.model_validate(
        {"name": "bg", "command": ["/bin/sh", str(script)], "stop_timeout": 2}
    )
    outcome = await lab.actuator(service).apply(action("bg", Start()), KEY)
    assert not outcome.ok
    assert "it left 1 process running, now ended" in outcome.detail, outcome.detail
    assert sleepers(lab) == []


async def test_a_missing_working_directory_is_named_as_such(lab: Lab) -> None:
    """A working directory that does not exist fails the start (terminal) and its health
    command with a message naming the directory, not the command nor a Python repr."""
    missing = lab.tmp_path / "no-such-directory"
    service = LocalServiceSettings.model_validate(
        {"name": "nodir", "command": ["/bin/true"], "working_directory": str(missing)}
    )
    outcome = await lab.actuator(service).apply(action("nodir", Start()), KEY)
    assert not outcome.ok and outcome.error_code == "CannotExecute"
    assert outcome.detail == (
        f"cannot run /bin/true: working directory {missing}: No such file or directory"
    )
    checked = service.model_copy(update={"health_command": ["/bin/true"]})
    passed, detail = await check(checked, {})
    assert (passed, detail) == (
        False,
        f"health command cannot run: working directory {missing}: No such file or directory",
    )


async def test_a_start_whose_pidfile_cannot_be_written_leaves_no_process(lab: Lab) -> None:
    """Writing the pidfile fails (a full disk; here its temporary name is taken by a
    directory): the process Jarvis could not record is ended, not left running where no
    later start or stop would recognise it, beside a second copy."""
    service = LocalServiceSettings.model_validate(
        {"name": "unrecorded", "command": [sys.executable, "-c", SLEEPER, str(lab.tmp_path)]}
    )
    (lab.state / "unrecorded.pid.tmp").mkdir(parents=True)
    outcome = await lab.actuator(service).apply(action("unrecorded", Start()), KEY)
    assert not outcome.ok
    assert "cannot record" in outcome.detail, outcome.detail
    assert sleepers(lab) == []


async def test_a_silent_exit_is_not_blamed_on_an_earlier_run_s_stderr(lab: Lab) -> None:
    """The stderr line in a failed start's detail is this run's: a run that wrote none
    does not show the line an earlier run left in the log."""
    flag = lab.tmp_path / "ran-once"
    script = (
        "import pathlib, sys; flag = pathlib.Path(sys.argv[1])\n"
        "if flag.exists(): sys.exit(0)\n"
        "flag.touch(); print('first run: disk on fire', file=sys.stderr); sys.exit(1)\n"
    )
    service = LocalServiceSettings.model_validate(
        {"name": "flaky", "command": [sys.executable, "-c", script, str(flag)]}
    )
    actuator = lab.actuator(service)
    first = await actuator.apply(action("flaky", Start()), KEY)
    assert "exited with code 1; stderr: first run: disk on fire" in first.detail
    second = await actuator.apply(action("flaky", Start()), "jarvis-" + "c" * 40)
    assert "exited with code 0" in second.detail
    assert "disk on fire" not in second.detail, second.detail
    [state] = await actuator.observe()
    assert "disk on fire" not in state.detail, state.detail
