"""The spool's disk fills up during an outage; when the database is back, the daemon writes again.

A real `jarvis run` on SQLite, its spool on a 64 KiB tmpfs. The test holds
the database's write lock (an outage: writes fail after the busy timeout, so
they spool), then fills the spool's file system to the last byte, as a long
outage's spool or anything else on that disk would, and lets the database go.
Before, the first replayed chunk committed and then the cursor beside the
spool could not be written (no space), so the replay failed, the spool was
never emptied to free the space, and every flush after it failed the same
way: nothing reached the healthy database again, and every action was
blocked as `store_unavailable`.
"""

from __future__ import annotations

import contextlib
import errno
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.conftest import jarvis_argv, jarvis_env
from tests.full_disk import fill, tmpfs

DEADLINE = 120.0


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs, unmounted afterwards."""
    with tmpfs(tmp_path / "tiny", "64k") as mount:
        yield mount


def count(database: Path, kind: str) -> int:
    with contextlib.closing(sqlite3.connect(database, timeout=30)) as connection:
        try:
            return int(
                connection.execute(
                    "SELECT count(*) FROM events WHERE kind = ?", (kind,)
                ).fetchone()[0]
            )
        except sqlite3.OperationalError:
            return 0  # not created yet


def wait(check: object, what: str, daemon: subprocess.Popen[bytes], log: Path) -> None:
    assert callable(check)
    deadline = time.monotonic() + DEADLINE
    while not check():
        assert daemon.poll() is None, f"the daemon exited before {what}:\n{log.read_text()[-3000:]}"
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {DEADLINE:.0f} s for {what}:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)


@pytest.mark.timeout(400)  # a daemon through an outage with five-second busy waits
def test_after_an_outage_that_filled_the_spools_disk_the_daemon_writes_again(
    tmp_path: Path, tiny_disk: Path
) -> None:
    database = tmp_path / "jarvis.db"
    spool = tiny_disk / "spool.jsonl"
    env = jarvis_env(tmp_path, JARVIS_SPOOL_PATH=str(spool), JARVIS_HTTP__ENABLED="false")
    log = tmp_path / "daemon.log"
    with log.open("wb") as out:
        daemon = subprocess.Popen(
            jarvis_argv("run", "--interval", "0.5"),
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait(lambda: count(database, "tick.finished") >= 1, "a first tick", daemon, log)
        outage = sqlite3.connect(database, timeout=30, isolation_level=None)
        try:
            outage.execute("BEGIN EXCLUSIVE")
            wait(lambda: spool.exists() and spool.stat().st_size > 0, "a spooled line", daemon, log)
            fill(tiny_disk)
            with pytest.raises(OSError) as full:
                (tiny_disk / "probe").write_bytes(b"x" * 4096)
            assert full.value.errno == errno.ENOSPC
        finally:
            outage.execute("ROLLBACK")
            outage.close()
        before = count(database, "tick.finished")
        wait(
            lambda: count(database, "tick.finished") >= before + 5,
            "five ticks recorded after the outage",
            daemon,
            log,
        )
        assert spool.stat().st_size == 0, "the replayed spool is emptied"
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=60) == 0, log.read_text()[-3000:]
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
