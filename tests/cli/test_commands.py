"""The `jarvis` command as an operator uses it, run as a real subprocess."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.cli.conftest import Jarvis, jarvis_argv, jarvis_env


def test_a_bad_config_exits_2_naming_the_key(jarvis: Jarvis, tmp_path: Path) -> None:
    """Unknown keys, wrong types and malformed allow-list entries stop every command."""
    cases = [
        ("intervall = 3\n", "intervall: unknown key", ["run"]),
        ("[loop]\ninterval = 'soon'\n", "loop.interval", ["tick"]),
        (
            "[[allowlist]]\nprovider = 'sim'\nactions = ['explode']\n",
            "allowlist.0.actions",
            ["run"],
        ),
        ("[aws]\nbogus = 1\n", "aws.bogus", ["config", "check"]),
        ("[azure]\nregion = 'x'\n", "azure: unknown key", ["tick"]),
        ("[[allowlist]]\nprovider = 'gce'\nactions = ['*']\n", "allowlist.0.provider", ["plan"]),
        ("not toml [\n", "not valid TOML", ["killswitch", "status"]),
        (
            "[metrics.prometheus]\nurl = 'http://127.0.0.1:9090'\n"
            "services = { 'sim://web' = 'web' }\nqueries = { cpu_seconds = '$services' }\n",
            "metrics.prometheus.queries",
            ["config", "check"],
        ),
        (
            "[metrics.prometheus]\nurl = 'http://127.0.0.1:9090'\n"
            "services = { 'k8s://d/w' = 'w' }\n"
            "queries = { error_rate = 'e{service=~\"$services\"}' }\n",
            "metrics.prometheus.services: k8s://d/w",
            ["tick"],
        ),
    ]
    for text, expected, command in cases:
        (tmp_path / "bad.toml").write_text(text)
        result = jarvis("--config", "bad.toml", *command)
        assert result.returncode == 2, (text, command, result.stderr)
        assert expected in result.stderr, (text, result.stderr)
        assert "Traceback" not in result.stderr
    assert not (tmp_path / "jarvis.db").exists()


def test_a_bad_environment_variable_exits_2(jarvis: Jarvis, tmp_path: Path) -> None:
    """A JARVIS_* variable of the wrong type is named in the error."""
    env = jarvis_env(tmp_path, JARVIS_LOOP__INTERVAL="-5")
    result = jarvis("config", "check", env=env)
    assert result.returncode == 2
    assert "loop.interval" in result.stderr


def test_a_missing_config_file_exits_2(jarvis: Jarvis) -> None:
    """--config naming no file is a clear error, not a traceback."""
    result = jarvis("--config", "nope.toml", "config", "check")
    assert result.returncode == 2
    assert "config file not found: nope.toml" in result.stderr


def run_ticks(jarvis: Jarvis, n: int, *options: str) -> None:
    result = jarvis(*options, "run", "--ticks", str(n), "--interval", "0.05", "--http-port", "0")
    assert result.returncode == 0, result.stderr


def events_of(jarvis: Jarvis, *kinds: str) -> list[dict[str, object]]:
    args = [arg for kind in kinds for arg in ("--kind", kind)]
    result = jarvis("events", "--json", "--limit", "1000", *args)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def run_until(jarvis: Jarvis, tmp_path: Path, kind: str, deadline: float = 180) -> None:
    """Run the daemon until an event of ``kind`` is recorded, then stop it with SIGTERM.

    Waiting for the event, not counting ticks: under load a tick overruns its
    0.05 s interval, and a fixed number of ticks may end before the show does.
    """
    log = tmp_path / "daemon.log"
    # The log goes to a file: a pipe nobody reads fills up and blocks the daemon.
    with log.open("w") as sink:
        process = subprocess.Popen(
            jarvis_argv("run", "--interval", "0.05", "--http-port", "0"),
            cwd=tmp_path,
            env=jarvis_env(tmp_path),
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )
        try:
            until = time.monotonic() + deadline
            # A reader refuses a database the daemon has not made yet (it creates none).
            while time.monotonic() < until and not (
                (tmp_path / "jarvis.db").exists() and events_of(jarvis, kind)
            ):
                time.sleep(0.5)
            assert events_of(jarvis, kind), f"no {kind} within {deadline:g} s"
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)
    assert process.returncode == 0, log.read_text()


@pytest.mark.timeout(300)
def test_run_heals_the_simulated_fleet_and_escalates_the_broken_service(
    jarvis: Jarvis, tmp_path: Path
) -> None:
    """The embedded default's show: one crash healed, one service escalated."""
    run_until(jarvis, tmp_path, "action.escalated")
    applied = events_of(jarvis, "action.applied")
    assert [e["resource"] for e in applied] == ["sim://ai-dawg-vocal-coach"]
    failed = events_of(jarvis, "action.failed")
    assert [e["resource"] for e in failed] == ["sim://ai-dawg-ai-brain"] * 3
    escalated = events_of(jarvis, "action.escalated")
    assert [e["resource"] for e in escalated] == ["sim://ai-dawg-ai-brain"]


def test_tick_records_a_tick_and_plan_applies_and_records_nothing(jarvis: Jarvis) -> None:
    """A one-shot tick is recorded; plan shows its dry run and writes no event at all."""
    assert jarvis("tick").returncode == 0
    before = events_of(jarvis)
    result = jarvis("plan", "--json")
    assert result.returncode == 0, result.stderr
    decisions = [row["decision"] for row in json.loads(result.stdout)["decisions"]]
    assert set(decisions) <= {"blocked: dry_run"}
    assert events_of(jarvis) == before
    started = events_of(jarvis, "tick.started")
    assert [e["payload"] for e in started] == [{"dry_run": False}]
    assert events_of(jarvis, "action.applied") == []


def test_killswitch_engage_status_release_are_recorded(jarvis: Jarvis) -> None:
    """Each flip is recorded with who and why; status reports it."""
    engaged = jarvis("killswitch", "engage", "--reason", "maintenance", "--actor", "alice")
    assert engaged.returncode == 0, engaged.stderr
    status = json.loads(jarvis("killswitch", "status", "--json").stdout)
    assert status["engaged"] is True and status["actor"] == "alice"
    assert status["reason"] == "maintenance"
    assert jarvis("killswitch", "release", "--actor", "alice").returncode == 0
    assert json.loads(jarvis("killswitch", "status", "--json").stdout)["engaged"] is False
    flips = events_of(jarvis, "killswitch.engaged", "killswitch.released")
    assert [e["kind"] for e in flips] == ["killswitch.engaged", "killswitch.released"]


def test_an_engaged_kill_switch_blocks_a_later_run(jarvis: Jarvis) -> None:
    """With the switch engaged from another process, the daemon applies nothing."""
    jarvis("killswitch", "engage", "--reason", "incident")
    run_ticks(jarvis, 4)
    assert events_of(jarvis, "action.applied", "action.started") == []
    blocked = events_of(jarvis, "action.blocked")
    assert blocked and {e["reason"] for e in blocked} == {"killswitch"}


def test_engage_requires_a_reason(jarvis: Jarvis) -> None:
    """An empty reason is refused with status 2."""
    result = jarvis("killswitch", "engage", "--reason", " ")
    assert result.returncode == 2
    assert "--reason" in result.stderr


def test_retries_list_and_reset(jarvis: Jarvis) -> None:
    """The ledger shows the failing service; reset clears it and is recorded."""
    run_ticks(jarvis, 6)
    listed = [json.loads(line) for line in jarvis("retries", "list", "--json").stdout.splitlines()]
    brain = next(r for r in listed if r["resource"] == "sim://ai-dawg-ai-brain")
    assert brain["consecutive_failures"] >= 1
    reset = jarvis("retries", "reset", "sim://ai-dawg-ai-brain")
    assert reset.returncode == 0 and "reset 1" in reset.stdout
    assert [e["resource"] for e in events_of(jarvis, "retries.reset")] == ["sim://ai-dawg-ai-brain"]
    bad = jarvis("retries", "reset", "ai-brain")
    assert bad.returncode == 2 and "provider://name" in bad.stderr


def test_events_filters_by_resource_and_rejects_unknown_kinds(jarvis: Jarvis) -> None:
    """--resource narrows the listing; a misspelt --kind is an error."""
    run_ticks(jarvis, 3)
    out = jarvis("events", "--json", "--resource", "sim://ai-dawg-vocal-coach").stdout
    resources = {json.loads(line)["resource"] for line in out.splitlines()}
    assert resources == {"sim://ai-dawg-vocal-coach"}
    bad = jarvis("events", "--kind", "action.apply")
    assert bad.returncode == 2 and "unknown event kind" in bad.stderr


def test_events_refuses_a_resource_filter_that_is_no_uri(jarvis: Jarvis) -> None:
    """`--resource ai-dawg-vocal-coach` (the scheme left out) exits 2 in one line, as
    `retries reset` does, rather than print nothing as if the resource were quiet."""
    run_ticks(jarvis, 1)
    for typo in ("ai-dawg-vocal-coach", "sim:/ai-dawg-vocal-coach"):
        bad = jarvis("events", "--resource", typo)
        assert bad.returncode == 2, (typo, bad.stdout, bad.stderr)
        assert bad.stderr.strip() == (
            f"error: not a resource URI (want provider://name): {typo!r}"
        ), bad.stderr


@pytest.mark.anyio
async def test_an_unmigrated_postgres_names_the_upgrade_command(
    jarvis: Jarvis, tmp_path: Path, pg_url: str
) -> None:
    """On an empty Postgres, commands refuse with a pointer to `jarvis db upgrade`."""
    env = jarvis_env(tmp_path, JARVIS_DATABASE_URL=pg_url)
    result = jarvis("tick", env=env)
    assert result.returncode == 2  # a schema to migrate first: no wait migrates it
    assert "jarvis db upgrade" in result.stderr
    assert "Traceback" not in result.stderr
    upgraded = jarvis("db", "upgrade", env=env)
    assert upgraded.returncode == 0, upgraded.stderr
    assert jarvis("tick", env=env).returncode == 0


def test_an_unreachable_database_is_one_clear_line(jarvis: Jarvis, tmp_path: Path) -> None:
    """A database that does not answer gives exit 1 and no traceback."""
    env = jarvis_env(tmp_path, JARVIS_DATABASE_URL="postgresql+asyncpg://postgres@127.0.0.1:1/none")
    result = jarvis("events", env=env)
    assert result.returncode == 1
    assert "127.0.0.1" in result.stderr and "Traceback" not in result.stderr


def test_a_server_that_never_answers_is_named_a_timeout(jarvis: Jarvis, tmp_path: Path) -> None:
    """A port that takes the connection but never speaks PostgreSQL reads as a timeout."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        url = f"postgresql+asyncpg://postgres@127.0.0.1:{port}/none"
        result = jarvis("events", env=jarvis_env(tmp_path, JARVIS_DATABASE_URL=url))
    assert result.returncode == 1, result.stderr
    assert f"cannot reach PostgreSQL at 127.0.0.1:{port} (database none): TimeoutError: " in (
        result.stderr
    )
    assert "CancelledError" not in result.stderr and "no detail" not in result.stderr


@pytest.mark.anyio
async def test_a_postgres_database_that_does_not_exist_is_named_as_such(
    jarvis: Jarvis, tmp_path: Path, pg_url: str
) -> None:
    """A server that answers "no such database" is not reported as unreachable."""
    missing = pg_url.rsplit("/", 1)[0] + "/jarvis_no_such_database"
    for command in (("events",), ("db", "upgrade"), ("run", "--ticks", "1", "--http-port", "0")):
        result = jarvis(*command, env=jarvis_env(tmp_path, JARVIS_DATABASE_URL=missing))
        assert result.returncode == 2, (command, result.stderr)  # createdb first
        assert "has no database 'jarvis_no_such_database'" in result.stderr, result.stderr
        assert "cannot reach" not in result.stderr and "Traceback" not in result.stderr
