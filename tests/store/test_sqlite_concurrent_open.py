"""Two processes opening one new SQLite database at once both succeed.

Before, the second to start a migration read an empty database in a deferred
transaction, the first committed the schema, and the second's upgrade to a
write lock failed at once with "database is locked" (SQLite does not wait on a
stale snapshot): `jarvis events` or `killswitch engage` failed while the
daemon was starting. Migrations now take the write lock up front and wait for
it, and then find the schema already there.
"""

from __future__ import annotations

import sys
from pathlib import Path

import anyio
import pytest

pytestmark = pytest.mark.anyio

OPEN = """
import anyio, sys
from jarvis.store import EventStore

async def main() -> None:
    store = await EventStore.connect(sys.argv[1])
    await store.events(limit=1)
    await store.aclose()

anyio.run(main)
"""


async def test_many_processes_opening_a_new_database_at_once_all_succeed(tmp_path: Path) -> None:
    """Eight processes race to create and migrate one file; none fails as locked."""
    url = f"sqlite+aiosqlite:///{tmp_path}/jarvis.db"
    script = tmp_path / "open.py"
    script.write_text(OPEN, encoding="utf-8")
    results: list[tuple[int, str]] = []

    async def one() -> None:
        done = await anyio.run_process([sys.executable, str(script), url], check=False)
        results.append((done.returncode, done.stderr.decode()[-400:]))

    with anyio.fail_after(120):
        async with anyio.create_task_group() as group:
            for _ in range(8):
                group.start_soon(one)
    assert [code for code, _ in results] == [0] * 8, [err for code, err in results if code]
