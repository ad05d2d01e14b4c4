"""The local-process actuator on real processes: start, crash, heal, stop, find again."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import anyio
import pytest

from jarvis.actuators.local.actuator import LocalActuator
from jarvis.actuators.local.process import Pidfiles, is_ours, proc_identity
from jarvis.config import load_settings
from jarvis.config.local import LocalServiceSettings
from jarvis.config.secrets import known_secrets
from jarvis.loop.clock import WallClock
from jarvis.model import Action, Health, ResourceRef, Restart, Start, Stop
from jarvis.model.actions import ActionParams
from jarvis.providers.registry import build_sensors
from tests.local.conftest import (
    Lab,
    alive,
    crashing_argv,
    server_argv,
    wait_dead,
    wait_http,
    web,
)

pytestmark = pytest.mark.anyio

KEY = "jarvis-" + "a" * 40


def action(name: str, params: ActionParams) -> Action:
    return Action(ResourceRef("local", name), params, policy="test", reason="test")


def pid_of(lab: Lab, name: str) -> int:
    record = Pidfiles(lab.state).read(name)
    assert record is not None
    return record.pid


async def test_a_service_not_running_is_unhealthy_and_a_restart_starts_it(lab: Lab) -> None:
    """Nothing running is 0 of 1; RESTART starts it, waits for health, and records its pid."""
    api = web("api", lab.tmp_path)
    actuator = lab.actuator(api)
    [before] = await actuator.observe()
    assert before.health is Health.UNHEALTHY
    assert before.replicas is not None and before.replicas.running == 0
    assert str(before.ref) == "local://api"

    outcome = await actuator.apply(action("api", Restart()), KEY)
    assert outcome.ok, outcome.detail
    assert api.health_url is not None
    wait_http(api.health_url, 0)  # answers at once: the apply waited for health
    [after] = await actuator.observe()
    assert after.health is Health.HEALTHY
    assert after.attributes["pid"] == pid_of(lab, "api")
    assert (lab.state / "api.stderr.log").exists()


async def test_a_killed_process_is_unhealthy_and_a_restart_heals_it(lab: Lab) -> None:
    """SIGKILL makes it unhealthy (with the exit code); a restart runs a new process."""
    actuator = lab.actuator(web("api", lab.tmp_path))
    assert (await actuator.apply(action("api", Start()), KEY)).ok
    first = pid_of(lab, "api")
    os.kill(first, signal.SIGKILL)
    wait_dead(first)
    deadline = time.monotonic() + 30
    while True:  # the exit code is there once the kernel has made it a zombie
        [crashed] = await actuator.observe()
        assert crashed.health is Health.UNHEALTHY
        if "exited with code -9" in crashed.detail or time.monotonic() > deadline:
            break
        await anyio.sleep(0.05)
    assert "exited with code -9" in crashed.detail

    outcome = await actuator.apply(action("api", Restart()), "jarvis-" + "b" * 40)
    assert outcome.ok, outcome.detail
    assert pid_of(lab, "api") != first
    [healed] = await actuator.observe()
    assert healed.health is Health.HEALTHY


async def test_a_restart_replaces_a_running_process_and_its_key_is_not_applied_twice(
    lab: Lab,
) -> None:
    """A RESTART replaces the running process; the same key again changes nothing."""
    actuator = lab.actuator(web("api", lab.tmp_path))
    assert (await actuator.apply(action("api", Start()), KEY)).ok
    first = pid_of(lab, "api")
    key = "jarvis-" + "c" * 40
    assert (await actuator.apply(action("api", Restart()), key)).ok
    second = pid_of(lab, "api")
    assert second != first and not alive(first)

    again = await actuator.apply(action("api", Restart()), key)
    assert again.ok and "already applied" in again.detail
    assert pid_of(lab, "api") == second


async def test_a_restarted_daemon_finds_its_process_and_starts_no_second_copy(lab: Lab) -> None:
    """A new actuator on the same state directory sees the running process as healthy."""
    api = web("api", lab.tmp_path)
    assert (await lab.actuator(api).apply(action("api", Start()), KEY)).ok
    pid = pid_of(lab, "api")

    restarted = lab.actuator(api)
    [seen] = await restarted.observe()
    assert seen.health is Health.HEALTHY and seen.attributes["pid"] == pid
    outcome = await restarted.apply(action("api", Start()), "jarvis-" + "d" * 40)
    assert outcome.ok and "already running" in outcome.detail
    assert restarted.children == ()
    assert pid_of(lab, "api") == pid

    stopped = await restarted.apply(action("api", Stop()), "jarvis-" + "e" * 40)
    assert stopped.ok, stopped.detail
    assert not alive(pid)
    assert not (lab.state / "api.pid").exists()


async def test_a_stopped_service_stays_stopped_until_started(lab: Lab) -> None:
    """After STOP it is healthy at 0 of 0 (heal leaves it be), in a restarted daemon too;
    START runs it again and it counts 1 of 1."""
    api = web("api", lab.tmp_path)
    actuator = lab.actuator(api)
    assert (await actuator.apply(action("api", Start()), KEY)).ok
    assert (await actuator.apply(action("api", Stop()), "jarvis-" + "e" * 40)).ok
    [stopped] = await lab.actuator(api).observe()
    assert stopped.health is Health.HEALTHY and stopped.detail == "stopped on request"
    assert stopped.replicas is not None and stopped.replicas.desired == 0
    assert (await actuator.apply(action("api", Start()), "jarvis-" + "1" * 40)).ok
    [started] = await actuator.observe()
    assert started.health is Health.HEALTHY
    assert started.replicas is not None and started.replicas.desired == 1


async def test_a_process_jarvis_did_not_start_is_never_killed(lab: Lab) -> None:
    """The same command started by hand is not Jarvis's: stop leaves it alone, and a
    look-alike beside Jarvis's own copy survives that copy's restart and stop."""
    api = web("api", lab.tmp_path)
    twin = lab.start_foreign(api.command)
    assert api.health_url is not None
    wait_http(api.health_url)
    actuator = lab.actuator(api)
    assert (await actuator.apply(action("api", Stop()), KEY)).detail == "not running"
    assert alive(twin.pid)
    twin.kill()
    twin.wait()

    other = web("api", lab.tmp_path)  # the same program and name on another port
    lookalike = lab.start_foreign(other.command)
    assert other.health_url is not None
    wait_http(other.health_url)
    assert (await actuator.apply(action("api", Start()), KEY)).ok
    ours = pid_of(lab, "api")
    assert (await actuator.apply(action("api", Restart()), "jarvis-" + "f" * 40)).ok
    assert not alive(ours)
    assert (await actuator.apply(action("api", Stop()), "jarvis-" + "0" * 40)).ok
    assert alive(lookalike.pid)


async def test_a_pidfile_naming_a_reused_pid_is_not_trusted(lab: Lab) -> None:
    """A pidfile whose pid now runs something else, or the same command started later,
    is not ours: observe says not running and stop signals nothing."""
    api = web("api", lab.tmp_path)
    foreign = lab.start_foreign(api.command)
    assert api.health_url is not None
    wait_http(api.health_url)
    lab.state.mkdir()
    files = Pidfiles(lab.state)
    identity = proc_identity(foreign.pid)
    assert identity is not None
    for cmdline, ticks in [(["/bin/sleep", "1000"], identity[1]), (api.command, 1)]:
        (lab.state / "api.pid").write_text(
            json.dumps(
                {
                    "pid": foreign.pid,
                    "cmdline": cmdline,
                    "start_ticks": ticks,
                    "started_at": 0,
                    "key": KEY,
                }
            )
        )
        record = files.read("api")
        assert record is not None and not is_ours(record)
        actuator = lab.actuator(api)
        [state] = await actuator.observe()
        assert state.health is Health.UNHEALTHY and "not running" in state.detail
        assert (await actuator.apply(action("api", Stop()), KEY)).detail == "not running"
        assert alive(foreign.pid)
        (lab.state / "api.stopped").unlink()


async def test_a_command_that_exits_at_once_fails_with_its_exit_code_and_stderr(
    lab: Lab,
) -> None:
    """The start fails (temporary) naming the exit code and the last stderr line."""
    actuator = lab.actuator(
        web("bad", lab.tmp_path).model_copy(update={"command": crashing_argv(lab.tmp_path)})
    )
    outcome = await actuator.apply(action("bad", Restart()), KEY)
    assert not outcome.ok
    assert "exited with code 3" in outcome.detail and "boom: cannot start" in outcome.detail
    [state] = await actuator.observe()
    assert state.health is Health.UNHEALTHY


async def test_a_command_that_cannot_run_is_a_terminal_failure(lab: Lab) -> None:
    """A missing executable cannot start by retrying: terminal, so it escalates at once."""
    actuator = lab.actuator(
        web("gone", lab.tmp_path).model_copy(update={"command": [str(lab.tmp_path / "nope")]})
    )
    outcome = await actuator.apply(action("gone", Start()), KEY)
    assert not outcome.ok and outcome.error_kind is not None
    assert outcome.error_kind.value == "terminal"


async def test_the_command_gets_its_environment_and_working_directory(lab: Lab) -> None:
    """environment and secret_environment over the daemon's; the working directory set."""
    out = lab.tmp_path / "seen.json"
    script = (
        "import json, os, sys; json.dump([os.getcwd(), os.environ['PLAIN'], "
        "os.environ['TOKEN'], os.environ['PATH']], open(sys.argv[1], 'w')); "
        "import time; time.sleep(600)"
    )
    service = LocalServiceSettings.model_validate(
        {
            "name": "env",
            "command": [sys.executable, "-c", script, str(out)],
            "working_directory": str(lab.tmp_path),
            "environment": {"PLAIN": "plain-value"},
            "secret_environment": {"TOKEN": "s3cret-token"},
            "health_command": ["test", "-s", str(out)],
        }
    )
    assert (await lab.actuator(service).apply(action("env", Start()), KEY)).ok
    cwd, plain, token, path = json.loads(out.read_text())
    assert (cwd, plain, token, path) == (
        str(lab.tmp_path),
        "plain-value",
        "s3cret-token",
        os.environ["PATH"],
    )
    assert "s3cret-token" in known_secrets(service)


async def test_a_health_command_decides_health(lab: Lab) -> None:
    """With health_command, its exit status is the check: 0 healthy, else unhealthy."""
    flag = lab.tmp_path / "ok"
    check = ["test", "-e", str(flag)]
    api = web("api", lab.tmp_path).model_copy(
        update={"health_url": None, "health_command": check, "start_timeout": 2.0}
    )
    actuator = lab.actuator(api)
    failed = await actuator.apply(action("api", Start()), KEY)
    assert not failed.ok and "not healthy within 2 s" in failed.detail
    [state] = await actuator.observe()
    assert state.health is Health.UNHEALTHY and "health command exited 1" in state.detail
    flag.touch()
    [state] = await actuator.observe()
    assert state.health is Health.HEALTHY


async def test_stop_kills_a_process_that_ignores_sigterm(lab: Lab) -> None:
    """SIGTERM first; after stop_timeout, SIGKILL."""
    ready = lab.tmp_path / "ready"
    script = (
        "import pathlib, signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "pathlib.Path(sys.argv[1]).touch(); time.sleep(600)"
    )
    stubborn = web("stubborn", lab.tmp_path).model_copy(
        update={
            "command": [sys.executable, "-c", script, str(ready)],
            "health_url": None,
            "health_command": ["test", "-e", str(ready)],
            "stop_timeout": 1.0,
        }
    )
    actuator = lab.actuator(stubborn)
    assert (await actuator.apply(action("stubborn", Start()), KEY)).ok
    pid = pid_of(lab, "stubborn")
    outcome = await actuator.apply(action("stubborn", Stop()), "jarvis-" + "9" * 40)
    assert outcome.ok and "killed" in outcome.detail
    assert not alive(pid)


def test_server_argv_is_marked_with_the_test_directory(tmp_path: Path) -> None:
    """The janitor finds the test's processes by this mark."""
    assert str(tmp_path) in server_argv(1, tmp_path)


DUMP_ENVIRONMENT = (
    "import json, os, sys; json.dump(dict(os.environ), open(sys.argv[1], 'w')); "
    "import time; time.sleep(600)"
)
"""A service that writes the environment it was given to ``argv[1]``, then stays up."""


async def test_jarvis_s_own_variables_do_not_reach_the_service(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    """JARVIS_* variables (the database URL, tokens) are the daemon's; a service and its
    health command get only those its configuration names."""
    monkeypatch.setenv("JARVIS_DATABASE_URL", "postgresql://jarvis:hunter2@db/jarvis")
    monkeypatch.setenv("jarvis_admin_token", "admin-s3cret")
    out = lab.tmp_path / "seen.json"
    checked = lab.tmp_path / "checked.json"
    check = [sys.executable, "-c", DUMP_ENVIRONMENT.replace("time.sleep(600)", "0"), str(checked)]
    service = LocalServiceSettings.model_validate(
        {
            "name": "env",
            "command": [sys.executable, "-c", DUMP_ENVIRONMENT, str(out)],
            "environment": {"JARVIS_WANTED": "given"},
            "health_command": check,
        }
    )
    assert (await lab.actuator(service).apply(action("env", Start()), KEY)).ok
    for seen in (json.loads(out.read_text()), json.loads(checked.read_text())):
        jarvis = {k: v for k, v in seen.items() if k.upper().startswith("JARVIS_")}
        assert jarvis == {"JARVIS_WANTED": "given"}
        assert seen["PATH"] == os.environ["PATH"]


async def test_the_secrets_jarvis_reads_by_variable_name_do_not_reach_the_service(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A secret in a variable a setting names (``webhook_url_env``, Stripe's key) is the
    daemon's: the service started by the configured actuator does not inherit it, not
    even through a pattern in ``inherit_environment`` that matches it."""
    monkeypatch.setenv("TEAM_SLACK_HOOK", "https://hooks.slack.test/T0/B0/s3cret")
    monkeypatch.setenv("PLAIN_VARIABLE", "plain")
    out = lab.tmp_path / "seen.json"
    command = json.dumps([sys.executable, "-c", DUMP_ENVIRONMENT, str(out)])
    config = lab.tmp_path / "jarvis.toml"
    config.write_text(
        f'[notify.slack]\nwebhook_url_env = "TEAM_SLACK_HOOK"\n\n[local]\n'
        f"state_directory = {json.dumps(str(lab.state))}\n\n[[local.services]]\n"
        f'name = "env"\ncommand = {command}\n'
        f'health_command = ["test", "-s", {json.dumps(str(out))}]\n'
        'inherit_environment = ["PLAIN_VARIABLE", "TEAM_*"]\n'
    )
    [actuator] = [
        sensor
        for sensor in build_sensors(load_settings(config), WallClock())
        if isinstance(sensor, LocalActuator)
    ]
    lab.actuators.append(actuator)
    assert (await actuator.apply(action("env", Start()), KEY)).ok
    seen = json.loads(out.read_text())
    assert "TEAM_SLACK_HOOK" not in seen
    assert seen["PLAIN_VARIABLE"] == "plain"


CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE",
    "AWS_SECRET_ACCESS_KEY": "aws-s3cret",
    "AWS_SESSION_TOKEN": "aws-session",
    "GOOGLE_APPLICATION_CREDENTIALS": "/secrets/gcp.json",
    "KUBECONFIG": "/secrets/kubeconfig",
    "PGPASSWORD": "pg-s3cret",
}


async def test_a_service_gets_a_base_environment_and_what_its_config_passes(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The daemon's credentials (AWS, Google, Kubernetes, PG*) do not reach a service or its
    health command: they get PATH, HOME, LANG, LC_*, TZ... and what ``inherit_environment``
    (the section's and the service's) and ``environment`` name."""
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    passed = {"AWS_REGION": "eu-west-1", "APP_MODE": "calm", "APP_LEVEL": "2", "SHARED": "s"}
    for name, value in {**passed, "LC_TIME": "C", "TZ": "UTC", "HOME": "/root"}.items():
        monkeypatch.setenv(name, value)
    out = lab.tmp_path / "seen.json"
    checked = lab.tmp_path / "checked.json"
    check = [sys.executable, "-c", DUMP_ENVIRONMENT.replace("time.sleep(600)", "0"), str(checked)]
    config = lab.tmp_path / "jarvis.toml"
    config.write_text(
        f'[local]\nstate_directory = {json.dumps(str(lab.state))}\ninherit_environment = ["SHARED"]'
        f'\n\n[[local.services]]\nname = "env"\n'
        f"command = {json.dumps([sys.executable, '-c', DUMP_ENVIRONMENT, str(out)])}\n"
        f"health_command = {json.dumps(check)}\n"
        f'inherit_environment = ["AWS_REGION", "APP_*"]\nenvironment = {{ GIVEN = "yes" }}\n'
    )
    [actuator] = [
        sensor
        for sensor in build_sensors(load_settings(config), WallClock())
        if isinstance(sensor, LocalActuator)
    ]
    lab.actuators.append(actuator)
    assert (await actuator.apply(action("env", Start()), KEY)).ok
    for seen in (json.loads(out.read_text()), json.loads(checked.read_text())):
        assert not set(CREDENTIALS) & set(seen)
        for name in ("PATH", "LC_TIME", "TZ", "HOME", *passed):
            assert seen[name] == os.environ[name], name
        assert seen["GIVEN"] == "yes"
        assert not {name for name in os.environ if name.startswith("PYTEST")} & set(seen)
