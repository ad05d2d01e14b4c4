"""A kill switch in Redis whose user logs in but the server's ACL denies it the switch's
commands or key (NOPERM): Redis's counterpart of PostgreSQL's missing grant.

Each command exits 2 (lasting: no wait brings a grant) in one line naming the user, the
server, what was refused and the ACL rule to grant, never the password; a running daemon
whose user loses the grant fails safe, the switch read as engaged and /readyz saying why.
The real `jarvis` against a private redis-server started with ``--user`` rules
(`tests.private_redis`). Before, each read "cannot read the kill switch" as an outage:
exit 1, and `jarvis tick` and `jarvis run` went on (exit 0) with every action held.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import anyio
import pytest
import redis

from tests.cli.conftest import Jarvis, jarvis_env, set_switch
from tests.daemon import get, readyz_until, running, sample
from tests.private_redis import PrivateRedis, private_redis

PASSWORD = "acl-pw-Qr5w"
TOKEN = "t" * 32  # the admin token, to which /readyz says why a check fails
KEY = "jarvis:killswitch"

USERS = {
    # Logs in, may reach the key, and may run none of the switch's commands.
    "commands": ["on", f">{PASSWORD}", f"~{KEY}", "+ping"],
    # Logs in, may run every command, on other keys only.
    "key": ["on", f">{PASSWORD}", "~other:*", "+@all"],
}
"""Each user, named for what it lacks, with its ACL rule."""

COMMANDS = [
    ("killswitch", "engage", "--reason", "drill"),
    ("killswitch", "release", "--reason", "drill"),
    ("killswitch", "status"),
    ("tick",),
    ("run", "--http-port", "0", "--ticks", "1"),
]

NEEDED = ("hgetall", "del", "hset", "multi", "exec", "watch")
"""The commands of the rule the error line names, in its order."""

RULE = re.compile(r"\(ACL SETUSER (\S+) ([^)]*)\)")
"""The grant the error line names: the user, and the rule to give it."""


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[PrivateRedis]:
    args = [arg for name, rule in USERS.items() for arg in ("--user", name, *rule)]
    with private_redis(tmp_path, args) as server:
        yield server


def _url(server: PrivateRedis, user: str) -> str:
    return f"redis://{user}:{PASSWORD}@127.0.0.1:{server.port}/0"


def _redis(server: PrivateRedis, *command: str) -> None:
    """Run ``command`` as Redis's default user, which this server leaves open."""
    subprocess.run(
        ["redis-cli", "-p", str(server.port), *command], capture_output=True, check=True, timeout=20
    )


def _hash(server: PrivateRedis) -> dict[bytes | str, bytes | str]:
    """The switch's hash, byte for byte, as Redis's default user reads it."""
    client = redis.Redis(port=server.port)
    try:
        return client.hgetall(KEY)
    finally:
        client.close()


def _one_error(stderr: str) -> str:
    assert "Traceback" not in stderr
    assert PASSWORD not in stderr
    lines = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
@pytest.mark.parametrize("lacking", list(USERS))
def test_a_user_the_acl_denies_exits_2_naming_the_grant(
    redis_server: PrivateRedis,
    jarvis: Jarvis,
    tmp_path: Path,
    lacking: str,
    command: tuple[str, ...],
) -> None:
    """A user denied the switch's commands or its key exits 2 saying the server's ACL
    denies that user what the kill switch needs, Redis's reason, and the rule to grant."""
    done = jarvis(*command, env=jarvis_env(tmp_path, JARVIS_REDIS_URL=_url(redis_server, lacking)))
    assert done.returncode == 2, done.stdout + done.stderr
    line = _one_error(done.stderr)
    where = f"Redis at 127.0.0.1:{redis_server.port}: its ACL denies user {lacking}"
    assert f"{where} what the kill switch needs: NoPermissionError: " in line
    reason = "no permissions to access one of the keys" if lacking == "key" else "to run the '"
    assert reason in line
    rule = f"ACL SETUSER {lacking} +hgetall +del +hset +multi +exec +watch ~{KEY}"
    assert f"grant it ({rule}), or give redis_url a user that has it" in line
    assert PASSWORD not in done.stdout


def test_the_rule_it_names_is_all_the_switch_needs(
    redis_server: PrivateRedis, jarvis: Jarvis, tmp_path: Path
) -> None:
    """Given exactly the rule the line names, and nothing else, the user engages, reads
    and releases the switch, and ticks."""
    env = jarvis_env(tmp_path, JARVIS_REDIS_URL=_url(redis_server, "commands"))
    refused = jarvis("killswitch", "status", env=env)
    match = RULE.search(_one_error(refused.stderr))
    assert match is not None and match[1] == "commands", refused.stderr
    _redis(
        redis_server, "ACL", "SETUSER", "commands", "reset", "on", f">{PASSWORD}", *match[2].split()
    )
    for command, says in [
        (("killswitch", "engage", "--reason", "drill"), "ENGAGED"),
        (("killswitch", "status"), "ENGAGED"),
        (("killswitch", "release", "--reason", "drill"), "released"),
        (("killswitch", "status"), "released"),
        (("tick",), "tick "),
    ]:
        done = jarvis(*command, env=env)
        assert done.returncode == 0, done.stdout + done.stderr
        assert says in done.stdout


def test_a_daemon_whose_user_loses_the_grant_fails_safe_and_says_why(
    redis_server: PrivateRedis, tmp_path: Path
) -> None:
    """A grant taken from the daemon's user while it runs leaves it running with the switch
    read as engaged; /readyz's kill-switch check names the refusal and the rule to grant."""
    grant = "+hgetall +del +hset +multi +exec +watch"
    _redis(redis_server, "ACL", "SETUSER", "commands", *grant.split())
    url = _url(redis_server, "commands")
    env = jarvis_env(tmp_path, JARVIS_REDIS_URL=url, JARVIS_ADMIN_TOKEN=TOKEN)
    with running(tmp_path, env, "--interval", "0.5") as daemon:
        _redis(redis_server, "ACL", "SETUSER", "commands", "-hgetall")
        body = readyz_until(daemon.base, TOKEN, 503, time.monotonic() + 60, "ACL denies")
        checks = body["checks"]
        assert isinstance(checks, dict)
        assert "its ACL denies user commands what the kill switch needs" in checks["killswitch"]
        assert "ACL SETUSER commands +hgetall" in checks["killswitch"]
        deadline = time.monotonic() + 60
        while sample(get(f"{daemon.base}/metrics")[1], "jarvis_killswitch_engaged") != 1:
            assert time.monotonic() < deadline, "the switch never read as engaged"
            time.sleep(0.2)
        assert daemon.process.poll() is None
        output = daemon.stop()
        assert daemon.process.returncode == 0, output
    assert "Traceback" not in output
    assert PASSWORD not in output + json.dumps(body)


@pytest.mark.parametrize("refused", ["multi", "exec", "hset", "del"])
@pytest.mark.parametrize("verb", ["engage", "release"])
def test_a_flip_the_acl_refuses_part_of_leaves_the_switch_as_it_was(
    redis_server: PrivateRedis, jarvis: Jarvis, tmp_path: Path, verb: str, refused: str
) -> None:
    """An engage or release whose user is refused MULTI, EXEC, HSET or DEL exits 2 naming
    the refusal and the rule to grant, and leaves the hash byte for byte as it was.

    Refused MULTI alone, Redis ran DEL and HSET outside any transaction: the command said
    the flip failed, and it had happened."""
    # UNWATCH as the rule once named it: redis-py sent it as a watched release stopped short.
    granted = ["+unwatch", *(f"-{c}" if c == refused else f"+{c}" for c in NEEDED)]
    _redis(redis_server, "ACL", "SETUSER", "flip", "on", f">{PASSWORD}", f"~{KEY}", *granted)
    anyio.run(partial(set_switch, redis_server.url, engaged=verb == "release"))
    kept = _hash(redis_server)

    env = jarvis_env(tmp_path, JARVIS_REDIS_URL=_url(redis_server, "flip"))
    done = jarvis("killswitch", verb, "--reason", "refused", env=env)

    assert _hash(redis_server) == kept
    assert done.returncode == 2, done.stdout + done.stderr
    line = _one_error(done.stderr)
    assert "its ACL denies user flip what the kill switch needs: NoPermissionError: " in line
    assert f"no permissions to run the '{refused}' command" in line
    assert f"(ACL SETUSER flip {' '.join(f'+{c}' for c in NEEDED)} ~{KEY})" in line
    status = jarvis(
        "killswitch", "status", env=jarvis_env(tmp_path, JARVIS_REDIS_URL=redis_server.url)
    )
    assert ("ENGAGED" if verb == "release" else "released") in status.stdout, status.stdout
