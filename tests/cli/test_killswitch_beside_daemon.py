"""An operator flips the kill switch beside a running daemon while the database is down.

The real daemon runs on PostgreSQL behind a TCP proxy (the database going away is
the proxy stopping) and owns the spool file, so a `jarvis killswitch` in another
process cannot spool into it. For each backend of the switch: is the flip in
effect, what is the operator told, and does its record reach the database once
the database is back?
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest

from jarvis.model import EventKind, KillSwitchState
from jarvis.store import EventStore, upgrade
from jarvis.store.redis_killswitch import RedisKillSwitch
from tests.cli.conftest import jarvis_argv, jarvis_env
from tests.daemon import get, http_port
from tests.store.tcp_proxy import TcpProxy

pytestmark = pytest.mark.anyio

DEADLINE = 120.0
EVER = datetime.min.replace(tzinfo=UTC)
TOKEN = "admin-token-beside-the-daemon-0123"


@pytest.fixture
async def proxy(pg_url: str, pg_proxy: TcpProxy) -> TcpProxy:
    """``pg_proxy`` in front of a database migrated to head."""
    await upgrade(pg_url)
    return pg_proxy


def daemon(tmp_path: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with (tmp_path / "daemon.log").open("wb") as log:
        return subprocess.Popen(
            jarvis_argv("run", "--interval", "0.5", "--http-port", "0"),
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


async def killswitch(
    tmp_path: Path, env: dict[str, str], *args: str
) -> subprocess.CompletedProcess[bytes]:
    """`jarvis killswitch ARGS` in another process (awaited: the proxy runs in this loop)."""
    with anyio.fail_after(DEADLINE):
        return await anyio.run_process(
            jarvis_argv("killswitch", *args), cwd=tmp_path, env=env, check=False
        )


async def stored(pg_url: str, kind: EventKind, since: datetime | None = None) -> list[str]:
    """The reasons of every ``kind`` event in the database at or after ``since``."""
    store = await EventStore.connect(pg_url)
    try:
        found = await store.events_by_time(kinds=[kind.value], since=since)
    finally:
        await store.aclose()
    return [event.reason or "" for event in found]


async def wait_until(
    check: Callable[[], Awaitable[bool]], what: str, process: subprocess.Popen[bytes]
) -> None:
    with anyio.fail_after(DEADLINE):
        while not await check():
            assert process.poll() is None, f"the daemon exited ({process.returncode}) before {what}"
            await anyio.sleep(0.2)


def ticks_since(pg_url: str, since: datetime, count: int) -> Callable[[], Awaitable[bool]]:
    """A check: at least ``count`` ticks finished at or after ``since``."""

    async def ticked() -> bool:
        return len(await stored(pg_url, EventKind.TICK_FINISHED, since)) >= count

    return ticked


async def redis_state(redis_url: str) -> KillSwitchState | None:
    switch = RedisKillSwitch(redis_url)
    try:
        return await switch.read()
    finally:
        await switch.aclose()


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def listening(tmp_path: Path, process: subprocess.Popen[bytes]) -> int:
    """The HTTP port the daemon bound (read in a thread: the proxy runs in this loop)."""
    deadline = time.monotonic() + DEADLINE
    return await anyio.to_thread.run_sync(http_port, tmp_path / "daemon.log", deadline, process)


async def flip_over_http(port: int, *, engaged: bool, reason: str) -> tuple[int, str]:
    """POST /v1/killswitch to the daemon (in a thread: the proxy runs in this loop)."""
    body: dict[str, object] = {"engaged": engaged, "reason": reason}
    url = f"http://127.0.0.1:{port}/v1/killswitch"
    return await anyio.to_thread.run_sync(lambda: get(url, TOKEN, body))


def one_line(result: subprocess.CompletedProcess[bytes]) -> str:
    err = result.stderr.decode()
    assert "Traceback" not in err, err
    assert len(err.strip().splitlines()) <= 1, err
    return err


@pytest.mark.timeout(300)  # a daemon to start, a lease to lose and take again: slow under load
async def test_an_engage_in_redis_beside_a_daemon_with_the_database_down_is_recorded_later(
    tmp_path: Path, pg_url: str, proxy: TcpProxy, redis_url: str
) -> None:
    """The engage stops the daemon at once (Redis), exits 0 and says its record waits for the
    running Jarvis, which writes it when the database is back; a release meanwhile fails
    in one line and leaves it engaged; nothing is applied after the engage. Over the
    daemon's HTTP API a release is refused (503) and an engage spooled by the daemon itself.

    The engage exited 1 ("the flip is not recorded ... run the engage again"): the spool
    file belongs to the daemon, so its record was lost unless the operator came back.
    """
    env = jarvis_env(
        tmp_path,
        JARVIS_DATABASE_URL=proxy.url_for(pg_url),
        JARVIS_REDIS_URL=redis_url,
        JARVIS_ADMIN_TOKEN=TOKEN,
    )
    process = daemon(tmp_path, env)
    try:
        await wait_until(ticks_since(pg_url, EVER, 1), "a tick", process)
        port = await listening(tmp_path, process)
        await proxy.stop()

        http_release = await flip_over_http(port, engaged=False, reason="not yet")
        http_engage = await flip_over_http(port, engaged=True, reason="page engage")
        engaged = await killswitch(tmp_path, env, "engage", "--reason", "database down")
        released = await killswitch(tmp_path, env, "release", "--reason", "too soon")

        out = " ".join(engaged.stdout.decode().split())
        assert engaged.returncode == 0, engaged.stderr.decode()
        one_line(engaged)
        assert "kill switch ENGAGED" in out
        assert "not in the database yet" in out, out
        assert released.returncode == 1, released.stdout.decode()
        assert "stays engaged" in one_line(released)
        assert http_release[0] == 503, http_release
        assert http_engage[0] == 200, http_engage
        state = await redis_state(redis_url)
        assert state is not None
        assert (state.engaged, state.reason) == (True, "database down")

        await proxy.start()
        back = datetime.now(UTC)

        async def recorded() -> bool:
            reasons = await stored(pg_url, EventKind.KILLSWITCH_ENGAGED)
            return {"page engage", "database down"} <= set(reasons)

        await wait_until(recorded, "the engage was recorded", process)
        await wait_until(ticks_since(pg_url, back, 3), "three ticks", process)
    finally:
        stop(process)
    assert state.changed_at is not None
    assert await stored(pg_url, EventKind.ACTION_STARTED, state.changed_at) == []
    assert await stored(pg_url, EventKind.KILLSWITCH_RELEASED) == []
    # Each flip once: the daemon's own engage by its spool, the CLI's by the daemon's read.
    assert sorted(await stored(pg_url, EventKind.KILLSWITCH_ENGAGED)) == [
        "database down",
        "page engage",
    ]


@pytest.mark.timeout(300)
async def test_a_flip_in_the_database_beside_a_daemon_with_the_database_down_is_refused_plainly(
    tmp_path: Path, pg_url: str, proxy: TcpProxy
) -> None:
    """The switch lives in the database that is away: an engage and a release each exit 1 in
    one line saying nothing was written, and once the database is back the switch is as it was
    (released) and no flip is on record. Over the daemon's HTTP API an engage is refused (503).

    Both said only "cannot reach PostgreSQL at ...", not whether the switch had flipped."""
    env = jarvis_env(tmp_path, JARVIS_DATABASE_URL=proxy.url_for(pg_url), JARVIS_ADMIN_TOKEN=TOKEN)
    process = daemon(tmp_path, env)
    try:
        await wait_until(ticks_since(pg_url, EVER, 1), "a tick", process)
        port = await listening(tmp_path, process)
        await proxy.stop()

        http_engage = await flip_over_http(port, engaged=True, reason="page engage")
        engaged = await killswitch(tmp_path, env, "engage", "--reason", "database down")
        released = await killswitch(tmp_path, env, "release", "--reason", "too soon")

        await proxy.start()
        back = datetime.now(UTC)
        await wait_until(ticks_since(pg_url, back, 3), "three ticks", process)
        status = await killswitch(tmp_path, env, "status", "--json")
    finally:
        stop(process)
    for result, verb in ((engaged, "engage"), (released, "release")):
        assert result.returncode == 1, result.stdout.decode()
        line = one_line(result)
        assert f"cannot {verb} the kill switch" in line, line
        assert "nothing was written" in line, line
    assert http_engage[0] == 503, http_engage
    assert b'"engaged": false' in status.stdout
    assert await stored(pg_url, EventKind.KILLSWITCH_ENGAGED) == []
