"""The [local] section: what it accepts, the allow-list's default, and the operator's
`jarvis start` / `jarvis stop` through the guard."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from jarvis.actuators.local.process import Pidfiles
from jarvis.config import ConfigError, load_settings
from jarvis.providers import check_allowlist
from tests.cli.conftest import jarvis_argv, jarvis_env
from tests.local.conftest import Lab, alive, wait_dead, wait_http, web

SERVICE = """
[local]
state_directory = "state"

[[local.services]]
name = "web"
command = ["/bin/sleep", "600"]
"""


def load(tmp_path: Path, text: str) -> None:
    path = tmp_path / "jarvis.toml"
    path.write_text(text)
    check_allowlist(load_settings(path))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('health_url = "http://127.0.0.1:1/"\nhealth_command = ["true"]', "not both"),
        ('health_url = "ftp://x/"', "local.services.0.health_url"),
        ("start_seconds = 40", "start_seconds must be shorter"),
        ("start_timeout = 18", "start_timeout \\+ stop_timeout \\(23 s\\) must be below"),
        ("colour = 1", "local.services.0.colour: unknown key"),
        ('\n[[local.services]]\nname = "web"\ncommand = ["true"]', "two services are named"),
        # What exec cannot take: refused here, not failed (and retried) at every start.
        ('environment = { "A=B" = "x" }', "local.services.0.environment"),
        ('environment = { A = "x\\u0000y" }', "local.services.0.environment"),
        ('secret_environment = { "TOKEN=" = "x" }', "local.services.0.secret_environment"),
        ('health_command = ["test", "-e", "a\\u0000b"]', "local.services.0.health_command"),
        ('inherit_environment = ["A=B"]', "local.services.0.inherit_environment"),
        ('inherit_environment = ["A*B"]', "local.services.0.inherit_environment"),
        ('inherit_environment = ["jarvis_admin_token"]', "jarvis_admin_token is Jarvis's own"),
        # Another section's secret, named by its *_env setting: never a service's.
        (
            'inherit_environment = ["HOOK"]\n[notify.slack]\nwebhook_url_env = "HOOK"',
            "'web': inherit_environment: HOOK is Jarvis's own",
        ),
    ],
)
def test_a_malformed_service_is_a_config_error_naming_it(
    tmp_path: Path, extra: str, message: str
) -> None:
    """Contradictory or unknown keys, bad URLs, duplicate names and what no process can be
    given (a variable name with '=', a NUL) are refused."""
    with pytest.raises(ConfigError, match=message):
        load(tmp_path, SERVICE + extra)


def test_the_allow_list_knows_what_local_can_do(tmp_path: Path) -> None:
    """restart, start and stop are local's kinds; scale is not."""
    allowed = '[[allowlist]]\nprovider = "local"\nactions = ["restart", "start", "stop"]\n'
    load(tmp_path, allowed + SERVICE)
    with pytest.raises(ConfigError, match="local cannot scale"):
        load(tmp_path, '[[allowlist]]\nprovider = "local"\nactions = ["scale"]\n' + SERVICE)


def tick(lab: Lab, config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        jarvis_argv(*args, "--json", "--config", str(config)),
        cwd=lab.tmp_path,
        env=jarvis_env(lab.tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_by_default_the_allow_list_does_not_permit_local(lab: Lab) -> None:
    """With no allow-list entry for local, heal's restart is blocked and nothing starts."""
    config = lab.tmp_path / "jarvis.toml"
    config.write_text(SERVICE)
    result = tick(lab, config, "tick")
    assert result.returncode == 0, result.stderr
    [decision] = json.loads(result.stdout)["decisions"]
    assert decision["resource"] == "local://web"
    assert decision["decision"] == "blocked: allowlist"
    assert not (lab.tmp_path / "state" / "web.pid").exists()


def test_jarvis_start_and_stop_a_local_service_and_heal_leaves_it_stopped(lab: Lab) -> None:
    """The overrides start and stop it through the guard; a tick after the stop does not
    restart it."""
    api = web("web", lab.tmp_path)
    assert api.health_url is not None
    config = lab.tmp_path / "jarvis.toml"
    config.write_text(
        '[[allowlist]]\nprovider = "local"\nactions = ["*"]\n\n'
        f'[local]\nstate_directory = "state"\n\n[[local.services]]\nname = "web"\n'
        f"command = {json.dumps(api.command)}\nhealth_url = {json.dumps(api.health_url)}\n"
    )
    started = tick(lab, config, "start", "local://web")
    assert started.returncode == 0, started.stdout + started.stderr
    wait_http(api.health_url, 0)
    record = Pidfiles(lab.tmp_path / "state").read("web")
    assert record is not None and alive(record.pid), "it outlives the command that started it"
    pid = record.pid

    stopped = tick(lab, config, "stop", "local://web")
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    wait_dead(pid)
    after = tick(lab, config, "tick")
    assert after.returncode == 0, after.stderr
    assert json.loads(after.stdout)["decisions"] == []
