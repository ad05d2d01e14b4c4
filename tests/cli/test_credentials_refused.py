"""Credentials a server refuses, said as such: a wrong password, an unknown role, a host
pg_hba.conf rejects, a Redis password wrong or missing.

Each is lasting (exit 2: no wait fixes a password) and named by role or user, server
and setting, never by the password. The real `jarvis` against a private PostgreSQL
with SCRAM authentication (`tests.private_postgres`) and a private Redis with
``--requirepass`` (`tests.private_redis`).
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import anyio
import asyncpg
import pytest

from tests.cli.conftest import Jarvis, jarvis_env, set_switch
from tests.daemon import readyz_until, running
from tests.held_tick import held_probe, holding_endpoint, run_held
from tests.private_postgres import PrivatePostgres, private_postgres
from tests.private_redis import PrivateRedis, private_redis

# Each distinct, so that any one of them found in an output is a leak.
PASSWORD = "right-pw-h7Qx"
WRONG = "wrong-pw-Zk3v"
ROTATED = "rotated-pw-Mw9t"
REJECTED_PASSWORD = "rejected-pw-Lp4c"
REDIS_PASSWORD = "redis-pw-Vb8n"
TOKEN = "t" * 32  # the admin token, to which /readyz says why a check fails
SECRETS = (PASSWORD, WRONG, ROTATED, REJECTED_PASSWORD, REDIS_PASSWORD)


@pytest.fixture(scope="module")
def server() -> Iterator[PrivatePostgres]:
    """One server for every case: role ``jarvis`` with `PASSWORD`, its migrated database,
    and role ``rejected``, whom pg_hba.conf turns away from 127.0.0.1."""
    hba = [
        "host all rejected 127.0.0.1/32 reject",
        "host all all 127.0.0.1/32 scram-sha-256",
        "local all all scram-sha-256",
    ]
    with private_postgres(hba) as pg:

        async def prepare() -> None:
            admin = await asyncpg.connect(pg.admin_dsn)
            try:
                await admin.execute(f"CREATE ROLE jarvis LOGIN PASSWORD '{PASSWORD}'")
                await admin.execute(f"CREATE ROLE rejected LOGIN PASSWORD '{REJECTED_PASSWORD}'")
                await admin.execute("CREATE DATABASE jarvis OWNER jarvis")
            finally:
                await admin.close()
            from jarvis.store import upgrade

            await upgrade(pg.url("jarvis", PASSWORD, "jarvis"))

        anyio.run(prepare)
        yield pg


def _no_secret(*texts: str) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text


PG_COMMANDS = [
    ("tick",),
    ("status",),
    ("killswitch", "engage", "--reason", "drill"),
    ("db", "upgrade"),
    ("run", "--http-port", "0", "--ticks", "1"),
]
PG_CASES = {
    "wrong password": ("jarvis", WRONG, "InvalidPasswordError"),
    "unknown role": ("nosuch", WRONG, "InvalidPasswordError"),
}


@pytest.mark.parametrize("command", PG_COMMANDS, ids=" ".join)
@pytest.mark.parametrize("case", list(PG_CASES))
def test_postgres_refusing_credentials_exits_2_naming_role_server_and_setting(
    server: PrivatePostgres, jarvis: Jarvis, tmp_path: Path, case: str, command: tuple[str, ...]
) -> None:
    """A wrong password or an unknown role exits 2 saying the server refused these
    credentials, naming the role, host, port and database_url, never the password."""
    user, password, error = PG_CASES[case]
    env = jarvis_env(tmp_path, JARVIS_DATABASE_URL=server.url(user, password, "jarvis"))
    done = jarvis(*command, env=env)
    assert done.returncode == 2, done.stderr
    line = (
        f"PostgreSQL at 127.0.0.1:{server.port} refused these credentials (role {user}, "
        f"database jarvis): {error}"
    )
    assert line in done.stderr
    assert "fix the user or password in database_url" in done.stderr
    assert "cannot reach" not in done.stderr
    assert "Traceback" not in done.stderr
    _no_secret(done.stdout, done.stderr)


@pytest.mark.parametrize(
    ("user", "password", "error"),
    [
        ("rejected", REJECTED_PASSWORD, "InvalidAuthorizationSpecificationError"),
        ("jarvis", None, "InvalidPasswordError"),
    ],
    ids=["host rejected by pg_hba.conf", "no password given"],
)
def test_postgres_refusing_host_or_missing_password_exits_2(
    server: PrivatePostgres,
    jarvis: Jarvis,
    tmp_path: Path,
    user: str,
    password: str | None,
    error: str,
) -> None:
    """pg_hba.conf rejecting the host (SQLSTATE 28000) and a password left out are refused
    credentials too: exit 2, one line naming the role."""
    env = jarvis_env(tmp_path, JARVIS_DATABASE_URL=server.url(user, password, "jarvis"))
    done = jarvis("tick", env=env)
    assert done.returncode == 2, done.stderr
    assert f"refused these credentials (role {user}, database jarvis): {error}" in done.stderr
    assert "Traceback" not in done.stderr
    _no_secret(done.stdout, done.stderr)


async def _set_password(pg: PrivatePostgres, password: str) -> None:
    """Give role ``jarvis`` ``password`` and end its sessions: the pool must log in again."""
    admin = await asyncpg.connect(pg.admin_dsn)
    try:
        await admin.execute(f"ALTER ROLE jarvis PASSWORD '{password}'")
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'jarvis'"
        )
    finally:
        await admin.close()


def test_daemon_with_its_password_rotated_is_not_ready_and_spools_until_it_is_set_right(
    server: PrivatePostgres, tmp_path: Path
) -> None:
    """A password changed under a running daemon makes it not ready, saying the server
    refused its credentials; it keeps ticking into the spool, saying why in its log, and is
    ready again, the spool replayed, once the password is set back."""
    spool = tmp_path / "spool.jsonl"
    env = jarvis_env(
        tmp_path,
        JARVIS_DATABASE_URL=server.url("jarvis", PASSWORD, "jarvis"),
        JARVIS_ADMIN_TOKEN=TOKEN,
        JARVIS_SPOOL_PATH=str(spool),
    )
    try:
        with running(tmp_path, env, "--interval", "0.5") as daemon:
            anyio.run(_set_password, server, ROTATED)
            body = readyz_until(daemon.base, TOKEN, 503, time.monotonic() + 60, "refused")
            checks = body["checks"]
            assert isinstance(checks, dict)
            assert "refused these credentials (role jarvis" in checks["store"]
            assert daemon.process.poll() is None
            spooled = f'"reason": "PostgreSQL at 127.0.0.1:{server.port} refused these credentials'
            deadline = time.monotonic() + 60
            while spooled not in daemon.output():
                assert time.monotonic() < deadline, (
                    f"nothing was spooled for refused credentials; the daemon said:\n"
                    f"{daemon.output()[-4000:]}"
                )
                time.sleep(0.2)
            assert spool.stat().st_size > 0
            anyio.run(_set_password, server, PASSWORD)
            readyz_until(daemon.base, TOKEN, 200, time.monotonic() + 60)
            output = daemon.stop()
            assert daemon.process.returncode == 0, output
    finally:
        anyio.run(_set_password, server, PASSWORD)
    assert "Traceback" not in output
    _no_secret(output, json.dumps(body))


async def _sessions_ended(pg: PrivatePostgres) -> None:
    """Until role ``jarvis`` has no session left: pg_terminate_backend only signals them,
    and a session not yet gone would take the tick's writes with the old password."""
    deadline = time.monotonic() + 20
    admin = await asyncpg.connect(pg.admin_dsn)
    try:
        query = "SELECT count(*) FROM pg_stat_activity WHERE usename = 'jarvis'"
        while await admin.fetchval(query):
            assert time.monotonic() < deadline, "the sessions of role jarvis did not end"
            await anyio.sleep(0.05)
    finally:
        await admin.close()


def _rotated_mid_run(
    server: PrivatePostgres, tmp_path: Path, argv: list[str], config: str, redis_url: str
) -> tuple[int, str, str]:
    """Run `jarvis ARGV` on role ``jarvis``'s database, its password changed (the server
    ending its sessions) while its tick observes a held endpoint: after it connected and
    took the lease, before it records anything. The kill switch is in Redis, released, so
    the tick still reads it and goes on to apply. Its exit status, stdout and stderr."""
    anyio.run(partial(set_switch, redis_url, engaged=False))

    def rotate() -> None:
        anyio.run(_set_password, server, ROTATED)
        anyio.run(_sessions_ended, server)

    with holding_endpoint() as endpoint:
        (tmp_path / "jarvis.toml").write_text(held_probe(endpoint) + config, encoding="utf-8")
        env = jarvis_env(
            tmp_path,
            JARVIS_DATABASE_URL=server.url("jarvis", PASSWORD, "jarvis"),
            JARVIS_SPOOL_PATH=str(tmp_path / "spool.jsonl"),
            JARVIS_CONFIG=str(tmp_path / "jarvis.toml"),
            JARVIS_REDIS_URL=redis_url,
        )
        try:
            return run_held(argv, tmp_path, env, endpoint, rotate)
        finally:
            anyio.run(_set_password, server, PASSWORD)
            anyio.run(_end_leases, server)


async def _end_leases(pg: PrivatePostgres) -> None:
    """End the lease the one-shot could not give back (its password was gone), so the next
    command on this server's database is not refused as acting beside it."""
    admin = await asyncpg.connect(pg.admin_dsn.rsplit("/", 1)[0] + "/jarvis")
    try:
        await admin.execute("UPDATE leases SET expires_at = now()")
    finally:
        await admin.close()


OVERRIDE = "sim://ai-dawg-vocal-coach"
ALLOW_RESTART = '[[allowlist]]\nprovider = "sim"\nresources = "*"\nactions = ["restart"]\n'


@pytest.mark.parametrize(
    ("argv", "config"),
    [(["tick"], ""), (["restart", OVERRIDE], ALLOW_RESTART)],
    ids=["tick", "restart"],
)
def test_a_one_shot_whose_password_is_rotated_mid_run_exits_2_and_spools_nothing(
    server: PrivatePostgres, tmp_path: Path, redis_url: str, argv: list[str], config: str
) -> None:
    """`jarvis tick`, or an override, whose password changes after it connected exits 2
    saying the server refused its credentials and that its events were not recorded, nor
    spooled, as with a read-only or under-privileged database: it does not report success
    with its events in a spool that waits for a corrected URL. The override's refused
    write is its intent, made under the lease: its facts are not spooled either."""
    code, out, err = _rotated_mid_run(server, tmp_path, argv, config, redis_url)
    assert code == 2, out + err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, err
    assert (
        f"PostgreSQL at 127.0.0.1:{server.port} refused these credentials (role jarvis" in errors[0]
    )
    assert errors[0].endswith("its events were not recorded, nor spooled"), errors[0]
    assert "Traceback" not in err
    assert "sqlalche.me" not in err  # SQLAlchemy's text, anywhere: the lease's release said it
    logged = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    (release,) = [line for line in logged if line["event"] == "could not release the lease"]
    assert release["error"].startswith(f"PostgreSQL at 127.0.0.1:{server.port} refused these")
    spool = tmp_path / "spool.jsonl"
    assert not spool.exists() or not spool.read_text(encoding="utf-8")
    _no_secret(out, err)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[PrivateRedis]:
    with private_redis(tmp_path, ["--requirepass", REDIS_PASSWORD]) as server:
        yield server


REDIS_COMMANDS = [
    ("killswitch", "engage", "--reason", "drill"),
    ("killswitch", "status"),
    ("tick",),
    ("run", "--http-port", "0", "--ticks", "1"),
]


@pytest.mark.parametrize("command", REDIS_COMMANDS, ids=" ".join)
@pytest.mark.parametrize(
    ("password", "given"),
    [(WRONG, "a password given"), (None, "no password given")],
    ids=["wrong password", "no password"],
)
def test_redis_refusing_credentials_exits_2_without_the_password(
    redis_server: PrivateRedis,
    jarvis: Jarvis,
    tmp_path: Path,
    command: tuple[str, ...],
    password: str | None,
    given: str,
) -> None:
    """A kill switch in Redis whose password is wrong or missing exits 2 saying the server
    refused these credentials and to fix redis_url, never printing the password."""
    secret = "" if password is None else f":{password}@"
    url = f"redis://{secret}127.0.0.1:{redis_server.port}/0"
    done = jarvis(*command, env=jarvis_env(tmp_path, JARVIS_REDIS_URL=url))
    assert done.returncode == 2, done.stderr
    where = f"Redis at 127.0.0.1:{redis_server.port}: the server refused these credentials"
    assert f"{where} (user default, {given}): AuthenticationError" in done.stderr
    assert "fix the user or password in redis_url" in done.stderr
    assert "Traceback" not in done.stderr
    _no_secret(done.stdout, done.stderr)


_REDIS_CLI = ("redis-cli", "--no-auth-warning", "-p")


def test_redis_password_rotated_under_the_daemon_fails_safe_and_says_why(
    redis_server: PrivateRedis, tmp_path: Path
) -> None:
    """A Redis password changed under a running daemon leaves it running with the switch
    read as engaged; /readyz's kill-switch check says the credentials were refused."""
    url = f"redis://:{REDIS_PASSWORD}@127.0.0.1:{redis_server.port}/0"
    env = jarvis_env(tmp_path, JARVIS_REDIS_URL=url, JARVIS_ADMIN_TOKEN=TOKEN)
    with running(tmp_path, env, "--interval", "0.5") as daemon:
        for password, command in (
            (REDIS_PASSWORD, ["CONFIG", "SET", "requirepass", ROTATED]),
            (ROTATED, ["CLIENT", "KILL", "TYPE", "normal"]),  # its sessions log in again
        ):
            subprocess.run(
                [*_REDIS_CLI, str(redis_server.port), "-a", password, *command],
                capture_output=True,
                check=True,
                timeout=20,
            )
        body = readyz_until(daemon.base, TOKEN, 503, time.monotonic() + 60, "refused")
        checks = body["checks"]
        assert isinstance(checks, dict)
        assert "the server refused these credentials" in checks["killswitch"]
        assert daemon.process.poll() is None
        output = daemon.stop()
        assert daemon.process.returncode == 0, output
    assert "Traceback" not in output
    _no_secret(output, json.dumps(body))
