"""/readyz says so when the store answers but cannot be written.

Before, readiness was a ping: a database that answered reads while refusing
every write (here SQLite write-locked by another process; in the issue, a
spool that failed every flush) left /readyz at 200.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from tests.cli.conftest import jarvis_env
from tests.daemon import get, running


def wait_for_status(url: str, status: int, deadline: float) -> str:
    body = ""
    while time.monotonic() < deadline:
        code, body = get(url)
        if code == status:
            return body
        time.sleep(0.2)
    raise AssertionError(f"{url} never answered {status}; last: {body}")


def test_readyz_reports_a_store_that_cannot_be_written(tmp_path: Path) -> None:
    """Writes refused: 503 naming `store_writes`; writes back: 200 again."""
    env = jarvis_env(tmp_path, JARVIS_HTTP__HOST="127.0.0.1")
    with running(tmp_path, env, "--interval", "0.2") as daemon:
        ready = f"{daemon.base}/readyz"
        locker = sqlite3.connect(tmp_path / "jarvis.db", isolation_level=None, timeout=30)
        try:
            locker.execute("BEGIN IMMEDIATE")  # WAL: reads go on, writes wait and give up
            body = wait_for_status(ready, 503, time.monotonic() + 90)
            checks = json.loads(body)["checks"]
            assert checks["store"] == "ok"
            assert checks["store_writes"] != "ok"
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        body = wait_for_status(ready, 200, time.monotonic() + 90)
        assert json.loads(body)["checks"]["store_writes"] == "ok"
