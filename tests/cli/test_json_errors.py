"""Every `--json` command that fails prints its error as one JSON object on stdout.

`tick`, `plan` and the overrides already did (tests/cli/test_overrides.py); the
readers, the kill switch, `db prune`, `config check` and `simulate` printed
nothing on stdout when they failed, so a script piping them into `jq` read an
empty input and no reason. Each now prints ``{"error": MESSAGE}``, the message
of its ``error:`` on stderr, as its only line, with the exit status unchanged:
2 for a refused configuration or argument, 1 for a database or Redis that did
not answer.
"""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import anyio
import pytest

from tests.cli.conftest import Jarvis, jarvis_env, jarvis_process, one_object
from tests.loopback import free_port
from tests.store.tcp_proxy import TcpProxy

BUDGET = '[[budgets]]\nname = "one-restart-an-hour"\nmax = 1\n'
"""A budget, so that `jarvis budgets` opens the store (with none it has nothing to read)."""

COMMANDS: list[tuple[str, ...]] = [
    ("events",),
    ("status",),
    ("killswitch", "status"),
    ("killswitch", "engage", "--reason", "drill"),
    ("killswitch", "release"),
    ("retries", "list"),
    ("budgets",),
    ("silence", "list"),
    ("notifications", "list"),
    ("db", "prune"),
]
SIMULATE = ("simulate", "--days", "0.01", "--services", "2")


def ids(commands: list[tuple[str, ...]]) -> list[str]:
    return [" ".join(word for word in c if not word.startswith("-"))[:24] for c in commands]


def error_object(result: subprocess.CompletedProcess[str], code: int) -> str:
    """The ``error`` of the one object on stdout, having checked ``code`` and that it is
    the whole object and the message the command said on stderr."""
    assert result.returncode == code, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    found = one_object(result.stdout, result.stderr)
    assert found.keys() == {"error"}, found
    error: str = found["error"]
    return error


def closed_database() -> str:
    """A PostgreSQL URL on a loopback port nothing listens on."""
    return f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/jarvis"


@pytest.mark.parametrize(
    "command", [*COMMANDS, ("config", "check"), SIMULATE], ids=ids([*COMMANDS, ("c", "c"), ("s",)])
)
def test_a_refused_configuration_is_the_one_object_and_exit_2(
    jarvis: Jarvis, tmp_path: Path, command: tuple[str, ...]
) -> None:
    """A key no setting has: ``{"error": ...}`` names it, over the lines stderr says."""
    (tmp_path / "bad.toml").write_text("[loop]\nintervall = 5\n", encoding="utf-8")
    result = jarvis("--config", "bad.toml", *command, "--json")
    error = error_object(result, 2)
    assert error.startswith("invalid configuration (from the environment and bad.toml):\n")
    assert error.endswith("\n  loop.intervall: unknown key"), error


@pytest.mark.parametrize(
    "command",
    [*COMMANDS, (*SIMULATE, "--database-url", "{closed}")],
    ids=ids([*COMMANDS, ("simulate",)]),
)
def test_a_database_that_does_not_answer_is_the_one_object_and_exit_1(
    jarvis: Jarvis, tmp_path: Path, command: tuple[str, ...]
) -> None:
    """Nothing listens on the database's port: an outage, said in the object as on stderr."""
    (tmp_path / "jarvis.toml").write_text(BUDGET, encoding="utf-8")
    url = closed_database()
    argv = [url if word == "{closed}" else word for word in command]
    env = jarvis_env(tmp_path, JARVIS_DATABASE_URL=url, JARVIS_CONFIG="jarvis.toml")
    result = jarvis(*argv, "--json", env=env)
    error = error_object(result, 1)
    assert f"127.0.0.1:{url.split(':')[-1].split('/')[0]}" in error, error


@pytest.mark.parametrize(
    ("command", "said"),
    [
        (("events", "--resource", "vocal-coach"), "provider://name"),
        (("events", "--kind", "action.teleported"), "unknown event kind 'action.teleported'"),
        (("killswitch", "engage", "--reason", " "), "--reason must not be empty"),
        (("notifications", "list", "--status", "lost"), "--status: 'lost' is not one of"),
        (("simulate", "--faults", "meteor"), "unknown fault 'meteor'"),
        (("db", "prune"), "no event database at"),
    ],
    ids=["events-resource", "events-kind", "engage-reason", "outbox-status", "faults", "prune"],
)
def test_a_malformed_argument_is_the_one_object_and_exit_2(
    jarvis: Jarvis, command: tuple[str, ...], said: str
) -> None:
    """Refused before anything opens (a `db prune` of no SQLite database: before one is made)."""
    assert said in error_object(jarvis(*command, "--json"), 2)


def test_a_configuration_run_would_refuse_is_config_checks_one_object(
    jarvis: Jarvis, tmp_path: Path
) -> None:
    """`config check --json` refused past the settings (here a Kubernetes lease on
    SQLite, found while it builds what `run` builds) prints the error, not the settings."""
    env = jarvis_env(tmp_path, JARVIS_LEASE__BACKEND="kubernetes")
    error = error_object(jarvis("config", "check", "--json", env=env), 2)
    assert 'lease.backend = "kubernetes"' in error


@pytest.mark.parametrize(
    "command", [c for c in COMMANDS if c[0] == "killswitch"], ids=["status", "engage", "release"]
)
def test_a_redis_that_does_not_answer_is_the_kill_switchs_one_object_and_exit_1(
    jarvis: Jarvis, tmp_path: Path, command: tuple[str, ...]
) -> None:
    """The switch held in a Redis nothing listens for: the object names that Redis."""
    port = free_port()
    assert jarvis("db", "upgrade").returncode == 0
    env = jarvis_env(tmp_path, JARVIS_REDIS_URL=f"redis://127.0.0.1:{port}/0")
    error = error_object(jarvis(*command, "--json", env=env), 1)
    assert "kill switch" in error and f"Redis at 127.0.0.1:{port}" in error, error


@pytest.mark.anyio
@pytest.mark.parametrize(
    "command",
    [("events",), ("status",), ("retries", "list"), ("budgets",)],
    ids=["events", "status", "retries", "budgets"],
)
async def test_a_database_not_migrated_is_the_one_object_and_exit_2(
    jarvis: Jarvis, tmp_path: Path, pg_url: str, command: tuple[str, ...]
) -> None:
    """An empty PostgreSQL database: `jarvis db upgrade` first, says the object."""
    (tmp_path / "jarvis.toml").write_text(BUDGET, encoding="utf-8")
    env = jarvis_env(tmp_path, JARVIS_DATABASE_URL=pg_url, JARVIS_CONFIG="jarvis.toml")
    error = error_object(jarvis(*command, "--json", env=env), 2)
    assert "db upgrade" in error, error


@pytest.mark.anyio
async def test_a_followed_stream_that_loses_its_database_ends_with_the_error_object(
    tmp_path: Path, pg_url: str, pg_proxy: TcpProxy
) -> None:
    """`events --follow --json` whose database goes away after it printed ends its stream
    with ``{"error": ...}`` as the last line, exit 1: a script reading it learns why it ended."""
    from jarvis.model import Event, EventKind
    from jarvis.store import EventStore, upgrade

    await upgrade(pg_url)
    store = await EventStore.connect(pg_url)
    try:
        store.append(
            [Event(kind=EventKind.TICK_FINISHED, ts=datetime.now(UTC), idempotency_key="a")]
        )
        await store.flush()
    finally:
        await store.aclose()
    env = jarvis_env(tmp_path, JARVIS_DATABASE_URL=pg_proxy.url_for(pg_url))
    # Read in worker threads: the proxy it goes through runs in this loop.
    with jarvis_process("events", "--follow", "--json", cwd=tmp_path, env=env) as process:
        assert process.stdout is not None
        first = await anyio.to_thread.run_sync(process.stdout.readline)
        assert json.loads(first)["kind"] == "tick.finished", first
        await pg_proxy.stop()
        rest, err = await anyio.to_thread.run_sync(partial(process.communicate, timeout=60))
    result = subprocess.CompletedProcess(process.args, process.returncode, rest, err)
    error = error_object(result, 1)
    assert f"127.0.0.1:{pg_proxy.port}" in error, error
