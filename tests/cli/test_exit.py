"""A command exits when its work is done, even if a library left a stubborn task behind.

`jarvis run` once hung after logging "jarvis stopped" until SIGKILL: SQLAlchemy
closes a connection cancelled mid-query in a task of its own
(``_terminate_graceful_close``), and aiosqlite's ``close()`` awaits again in
its ``finally``. asyncio.run cancels leftover tasks once, so such a task never
finishes and the process never exits. Seen with faulthandler on SIGABRT: the
only thread left was the main one, inside ``asyncio.runners._cancel_all_tasks``.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

STUBBORN = textwrap.dedent(
    """
    import asyncio

    from jarvis.cli.common import run


    async def stubborn() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            # As aiosqlite's close() does: await a stop future no worker thread will set.
            await asyncio.get_running_loop().create_future()


    async def main() -> str:
        asyncio.get_running_loop().create_task(stubborn())
        await asyncio.sleep(0.1)
        return "done"


    print(run(main))
    """
)


def test_a_task_that_swallows_one_cancel_does_not_keep_the_process_alive() -> None:
    result = subprocess.run(
        [sys.executable, "-c", STUBBORN],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "done"
