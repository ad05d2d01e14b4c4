"""/readyz says so when the store answers but cannot be written.

Before, readiness was a ping: a database that answered reads while refusing
every write (here SQLite write-locked by another process; in the issue, a
spool that failed every flush) left /readyz at 200.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

from tests.cli.conftest import jarvis_argv, jarvis_env
from tests.cli.test_daemon import free_port, get, wait_for


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
    port = free_port()
    env = jarvis_env(tmp_path, JARVIS_HTTP__HOST="127.0.0.1")
    process = subprocess.Popen(
        jarvis_argv("run", "--interval", "0.2", "--http-port", str(port)),
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    ready = f"http://127.0.0.1:{port}/readyz"
    try:
        wait_for(ready, time.monotonic() + 60)
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
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
