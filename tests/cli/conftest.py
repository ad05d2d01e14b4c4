"""Helpers for running the real `jarvis` command in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from jarvis.model import Event, KillSwitchState, RetryState
from jarvis.store import EventStore

if TYPE_CHECKING:
    from tests.cloudrun.fake_server import FakeCloudRun

Jarvis = Callable[..., subprocess.CompletedProcess[str]]

QUARANTINED = "sim://ai-dawg-ai-brain"
"""The pair `migrated_with_quarantine` leaves for `jarvis retries reset` to find."""


def asyncpg_url(url: str) -> str:
    """A ``postgresql+asyncpg://`` URL as asyncpg itself takes it."""
    return url.replace("postgresql+asyncpg", "postgresql")


async def migrated_with_quarantine(pg_url: str) -> None:
    """The schema at ``pg_url``, and `QUARANTINED`'s restarts quarantined."""
    from jarvis.store import upgrade

    await upgrade(pg_url)
    store = await EventStore.connect(pg_url)
    try:
        store.stage_retry(
            RetryState(QUARANTINED, "restart", consecutive_failures=3, quarantined=True)
        )
        await store.flush()
    finally:
        await store.aclose()


def jarvis_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JARVIS_")}
    env.update(
        JARVIS_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/jarvis.db",
        JARVIS_SPOOL_PATH=str(tmp_path / "spool.jsonl"),
        JARVIS_LOG_FORMAT="json",
    )
    env.update(extra)
    return env


async def set_switch(
    redis_url: str, *, engaged: bool, actor: str = "test", reason: str = "crash drill"
) -> None:
    """Flip the kill switch held in Redis at ``redis_url`` straight to ``engaged``, as another
    process would, recording nothing."""
    from jarvis.store.redis_killswitch import RedisKillSwitch

    switch = RedisKillSwitch(redis_url)
    try:
        await switch.write(KillSwitchState(engaged, actor, reason, datetime.now(UTC)))
    finally:
        await switch.aclose()


def jarvis_argv(*args: str) -> list[str]:
    """The installed `jarvis` entry point of this environment."""
    return [str(Path(sys.executable).parent / "jarvis"), *args]


def said_error(stderr: str) -> str | None:
    """The message of the one ``error:`` a command exited with on stderr, its continuation
    lines included (a refused configuration names each key on a line of its own), as
    `fail` printed it last; None when it said none."""
    lines = stderr.splitlines()
    starts = [index for index, line in enumerate(lines) if line.startswith("error: ")]
    assert len(starts) <= 1, stderr
    if not starts:
        return None
    return "\n".join(lines[starts[0] :]).removeprefix("error: ")


def one_object(stdout: str, stderr: str) -> dict[str, Any]:
    """The one JSON object a `--json` command printed on stdout, whose ``error`` is the
    message of the ``error:`` on stderr (None when there is none)."""
    lines = stdout.splitlines()
    assert len(lines) == 1, stdout
    found: dict[str, Any] = json.loads(lines[0])
    assert isinstance(found, dict), stdout
    assert found.get("error") == said_error(stderr), stderr
    return found


@contextmanager
def jarvis_process(*args: str, cwd: Path, env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    """`jarvis ARGS` started with its stdout and stderr piped (text), for a test that acts
    while it runs; killed, if it still runs, when the block ends."""
    process = subprocess.Popen(
        jarvis_argv(*args),
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


WITHOUT_ROOT_READS = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]


def as_another_user(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`jarvis ARGS` in tmp_path, denied what file permissions deny (root's bypass dropped).

    Tests run as root, whom ``chmod 000`` does not stop: the command runs under
    ``setpriv`` without the two capabilities that let root read and write any file
    (``CAP_DAC_OVERRIDE``, ``CAP_DAC_READ_SEARCH``), as another user would.
    """
    return subprocess.run(
        [*WITHOUT_ROOT_READS, *jarvis_argv(*args)],
        cwd=tmp_path,
        env=env or jarvis_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def jarvis(tmp_path: Path) -> Jarvis:
    """Run `jarvis ARGS` to completion in tmp_path with an isolated SQLite database."""

    def run(
        *args: str, env: dict[str, str] | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            jarvis_argv(*args),
            cwd=tmp_path,
            env=env or jarvis_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    return run


async def seed(
    tmp_path: Path, *, retries: Sequence[RetryState] = (), events: Sequence[Event] = ()
) -> None:
    """Store in tmp_path's jarvis.db what a provider or an operator sent, as the daemon would."""
    store = await EventStore.connect(f"sqlite+aiosqlite:///{tmp_path}/jarvis.db")
    try:
        for state in retries:
            store.stage_retry(state)
        store.append(events)
        await store.flush()
    finally:
        await store.aclose()


@pytest.fixture
def cloudrun() -> Iterator[FakeCloudRun]:
    """The fake Cloud Run Admin API with one healthy service, ``api``, whose updates run
    until the test finishes them: a one-shot's restart of it ends unknown."""
    from tests.cloudrun.conftest import IMAGE, PROJECT, REGION
    from tests.cloudrun.fake_server import FakeCloudRun

    with FakeCloudRun() as server:
        server.state.add_service(PROJECT, REGION, "api", image=IMAGE, min_instances=1)
        server.state.operation_polls = None
        yield server


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The embedded SQLite file (the node lock makes a one-shot, or the daemon, the
    writer), or a new migrated PostgreSQL database (each takes the lease), dropped after."""
    from tests.conftest import migrated_pg_database

    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path}/jarvis.db"
        return
    with migrated_pg_database() as url:
        yield url
