"""The reading commands on a SQLite database this process cannot write; the daemon refuses one.

A sidecar or a debug container mounts the daemon's volume ``:ro`` and runs
`jarvis events`, `jarvis retries list`, `jarvis killswitch status`…: each failed
with "attempt to write a readonly database", since SQLite in WAL mode makes its
``-wal`` and ``-shm`` files even to read. Now they read it (`jarvis.store.sqlite_read`),
and `jarvis run` (like `jarvis tick`) refuses in one line a database it could not
write instead of spooling every tick. The files are seen through read-only bind
mounts (`tests.read_only_mount`): tests run as root, whom ``chmod`` does not stop.
"""

from __future__ import annotations

import json
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from jarvis.loop.events import tick_event
from jarvis.model import EventKind, RetryState
from tests.cli.conftest import Jarvis, jarvis_argv, jarvis_env, seed
from tests.daemon import running
from tests.read_only_mount import read_only_view

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
QUARANTINED = "sim://ai-dawg-vocal-coach"
BUDGETS = '[[budgets]]\nname = "two-restarts"\nactions = ["restart"]\nmax = 2\n'

READERS: list[tuple[tuple[str, ...], str]] = [
    (("events",), "tick.started"),
    (("retries", "list"), QUARANTINED),
    (("killswitch", "status"), "released"),
    (("report",), ""),
    (("silence", "list"), ""),
    (("notifications", "list"), ""),
    (("budgets",), "two-restarts"),
    (("plan",), "resources"),
    (("status",), "no daemon holds it"),
]


@pytest.fixture
async def view(tmp_path: Path) -> Path:
    """tmp_path/data holding a database the daemon wrote and closed, seen read-only at ro/."""
    data = tmp_path / "data"
    data.mkdir()
    await seed(
        data,
        retries=[RetryState(QUARANTINED, "restart", consecutive_failures=3, quarantined=True)],
        events=[tick_event(EventKind.TICK_STARTED, "t1", T0)],
    )
    (tmp_path / "budgets.toml").write_text(BUDGETS, encoding="utf-8")
    return tmp_path / "ro"


@pytest.mark.anyio
@pytest.mark.parametrize(("command", "shown"), READERS, ids=[" ".join(c) for c, _ in READERS])
async def test_a_reading_command_reads_a_read_only_mount(
    jarvis: Jarvis, tmp_path: Path, view: Path, command: tuple[str, ...], shown: str
) -> None:
    """Each reading command exits 0 and prints what is stored."""
    with read_only_view(tmp_path / "data", view):
        env = jarvis_env(view, JARVIS_SPOOL_PATH=str(tmp_path / "reader-spool.jsonl"))
        result = jarvis("--config", str(tmp_path / "budgets.toml"), *command, env=env)
        assert result.returncode == 0, result.stderr
        assert shown in result.stdout
        assert "Traceback" not in result.stderr


def test_jarvis_events_on_a_read_only_mount_beside_the_daemon_sees_its_latest_ticks(
    tmp_path: Path,
) -> None:
    """While `jarvis run` writes, a reader of its volume mounted ``:ro`` sees every tick
    it committed, those still in its ``-wal`` among them."""
    data = tmp_path / "data"
    data.mkdir()
    env = jarvis_env(data, JARVIS_HTTP__HOST="127.0.0.1")
    with running(data, env, "--interval", "0.5") as daemon:
        with read_only_view(data, tmp_path / "ro") as view:
            reader = jarvis_env(view, JARVIS_SPOOL_PATH=str(tmp_path / "reader-spool.jsonl"))
            deadline = time.monotonic() + 90
            while not _finished_ticks(reader):  # the daemon's first tick, still in its log
                assert time.monotonic() < deadline, "no tick read in 90 s"
            assert (data / "jarvis.db-wal").stat().st_size > 0
        assert daemon.process.poll() is None, daemon.output()


def _finished_ticks(env: dict[str, str]) -> int:
    done = subprocess.run(
        jarvis_argv("events", "--json", "--kind", "tick.finished", "-n", "1000"),
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return len([json.loads(line) for line in done.stdout.splitlines()])


@pytest.mark.anyio
@pytest.mark.parametrize("command", [("run", "--ticks", "1", "--http-port", "0"), ("tick",)])
async def test_a_writer_refuses_a_database_it_cannot_write_in_one_line(
    jarvis: Jarvis, tmp_path: Path, command: tuple[str, ...]
) -> None:
    """The database file mounted read-only (its directory writable, so the node lock is
    taken): exit 2 and one line naming it, where the daemon used to run spooling every tick."""
    (tmp_path / "data").mkdir()
    await seed(tmp_path / "data")
    with read_only_view(tmp_path / "data" / "jarvis.db", tmp_path / "jarvis.db"):
        result = jarvis(*command, env=jarvis_env(tmp_path, JARVIS_HTTP__HOST="127.0.0.1"))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"{tmp_path}/jarvis.db cannot be written" in lines[0]
    assert not (tmp_path / "spool.jsonl").exists() or not (tmp_path / "spool.jsonl").read_text()


WRITERS: list[tuple[str, ...]] = [
    ("tick", "--dry-run"),
    ("restart", QUARANTINED, "--dry-run"),
    ("silence", "add", "--match", "sim://*", "--for", "1h", "--reason", "maintenance"),
    ("silence", "expire", "0000"),
    ("retries", "reset", QUARANTINED),
]


@pytest.mark.anyio
@pytest.mark.parametrize("mounted", ["file", "directory"])
@pytest.mark.parametrize("command", WRITERS, ids=[" ".join(c[:2]) for c in WRITERS])
async def test_a_command_that_records_refuses_a_database_it_cannot_write(
    jarvis: Jarvis, tmp_path: Path, view: Path, command: tuple[str, ...], mounted: str
) -> None:
    """A dry run records its tick, a silence its event: on a file this process cannot write
    each exits non-zero in one line naming it, and spools nothing. Before, `tick --dry-run`
    and `silence add` spooled their events (exit 0: the silence was never in force) where
    the database's directory was writable, and said "cannot reach" where it was not."""
    data = tmp_path / "data"
    # The file alone beside a writable directory (tmp_path), or the whole directory.
    where = tmp_path if mounted == "file" else view
    source = data / "jarvis.db" if mounted == "file" else data
    spool = tmp_path / "reader-spool.jsonl"
    with read_only_view(source, where / "jarvis.db" if mounted == "file" else view):
        result = jarvis(*command, env=jarvis_env(where, JARVIS_SPOOL_PATH=str(spool)))
    assert result.returncode != 0, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"{where}/jarvis.db cannot be written by this process" in lines[0]
    assert "nothing was done or recorded" in lines[0]
    assert not spool.exists() or not spool.read_text(encoding="utf-8")


@pytest.mark.anyio
async def test_an_engage_in_redis_beside_a_read_only_database_still_engages(
    jarvis: Jarvis, tmp_path: Path, view: Path, redis_url: str
) -> None:
    """The switch in Redis is flipped whatever the database does: a writer's refusal of an
    unwritable file does not reach it, and its event waits in the spool, as before."""
    spool = tmp_path / "reader-spool.jsonl"
    with read_only_view(tmp_path / "data", view):
        env = jarvis_env(view, JARVIS_SPOOL_PATH=str(spool), JARVIS_REDIS_URL=redis_url)
        engaged = jarvis("killswitch", "engage", "--reason", "incident", env=env)
        status = jarvis("killswitch", "status", env=env)
    assert engaged.returncode == 0, engaged.stderr
    assert "ENGAGED" in engaged.stdout
    assert status.stdout.startswith("ENGAGED"), status.stdout
    assert spool.read_text(encoding="utf-8").count("killswitch") >= 1
