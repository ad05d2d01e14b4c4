"""A process SIGKILLed in the middle of replaying the spool loses nothing and doubles nothing.

A child process replays a spool of many chunks into PostgreSQL and is killed
as soon as its cursor shows the first chunk committed; the next store on the
same spool replays the rest. Every event is then stored exactly once.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest

from jarvis.model import Event, EventKind
from jarvis.store import EventStore, upgrade
from jarvis.store.spool import CHUNK_LINES, Spool

pytestmark = pytest.mark.anyio

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
EVENTS = CHUNK_LINES * 8

REPLAY = """
import sys, anyio
from pathlib import Path
from jarvis.store import EventStore

async def main() -> None:
    store = await EventStore.connect(sys.argv[1], spool_path=Path(sys.argv[2]))
    await store.flush()
    await store.aclose()

anyio.run(main)
"""


async def test_a_sigkill_mid_replay_loses_and_doubles_nothing(pg_url: str, tmp_path: Path) -> None:
    """Killed after its first committed chunk; the next process replays the rest, once."""
    await upgrade(pg_url)
    path = tmp_path / "spool.jsonl"
    spool = Spool(path)
    spool.append(
        [
            Event(
                kind=EventKind.RESOURCE_CHANGED,
                ts=T0 + timedelta(milliseconds=i),
                idempotency_key=f"e{i}",
                resource=f"sim://s{i % 50}",
                payload={"i": i},
            )
            for i in range(EVENTS)
        ]
    )
    spool.close()
    cursor = tmp_path / "spool.jsonl.cursor"
    child = subprocess.Popen([sys.executable, "-c", REPLAY, pg_url, str(path)])  # noqa: ASYNC220 - polled below, the test owns it
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and child.poll() is None:
            if cursor.exists() and cursor.read_text().strip() not in ("", "0"):
                break
            await anyio.sleep(0.005)
        assert child.poll() is None, "the replay finished before it could be interrupted"
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    committed = int(cursor.read_text())
    assert 0 < committed < path.stat().st_size

    store = await EventStore.connect(pg_url, spool_path=path)
    try:
        assert 0 < store.spooled < EVENTS
        assert (await store.flush()).spooled == 0
        assert await store.count_events() == EVENTS
        stored = await store.events(limit=EVENTS + 1)
    finally:
        await store.aclose()
    assert sorted(e.idempotency_key for e in stored) == sorted(f"e{i}" for i in range(EVENTS))
    assert path.read_bytes() == b""
