"""A one-shot command beside a running daemon leaves the daemon's intents alone.

Before, every `build_app` closed open intents as orphans, so `jarvis tick`,
`plan` or `deploy` run while the daemon was mid-apply recorded `action.unknown`
for the daemon's action, and the daemon's real outcome (same idempotency key)
was then dropped. Only the process that owns the loop closes orphans now.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest

from jarvis.model import Event, EventKind
from jarvis.store import EventStore
from tests.cli.conftest import jarvis_argv, jarvis_env

pytestmark = pytest.mark.anyio

ACTION_ID = "20260105T080000.000Z-daemon:sim://ai-dawg-producer:restart"


async def in_flight(url: str) -> None:
    """The intent a live daemon writes right before it calls the provider."""
    store = await EventStore.connect(url, auto_migrate=True)
    try:
        store.append(
            [
                Event(
                    kind=EventKind.ACTION_STARTED,
                    ts=datetime.now(UTC),
                    idempotency_key=f"{ACTION_ID}:started",
                    tick_id="20260105T080000.000Z-daemon",
                    resource="sim://ai-dawg-producer",
                    action_kind="restart",
                    policy="heal",
                    reason="unhealthy",
                    payload={"params": {}, "proposal": "unhealthy"},
                    action_id=ACTION_ID,
                )
            ]
        )
        await store.flush()
    finally:
        await store.aclose()


async def outcomes(url: str) -> list[Event]:
    store = await EventStore.connect(url)
    try:
        return await store.events(kinds=[EventKind.ACTION_UNKNOWN.value], limit=10)
    finally:
        await store.aclose()


@pytest.mark.parametrize("command", [("tick",), ("plan",)])
async def test_a_one_shot_command_does_not_close_the_daemons_intent(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    """`jarvis tick` or `plan` beside the daemon records no action.unknown for its intent."""
    url = f"sqlite+aiosqlite:///{tmp_path}/jarvis.db"
    await in_flight(url)
    with anyio.fail_after(120):
        done = await anyio.run_process(
            jarvis_argv(*command), cwd=tmp_path, env=jarvis_env(tmp_path), check=False
        )
    assert done.returncode == 0, done.stderr.decode()
    assert await outcomes(url) == []


async def test_the_daemon_still_closes_an_orphan_at_start(tmp_path: Path) -> None:
    """The process that owns the loop closes an intent a previous one left open."""
    url = f"sqlite+aiosqlite:///{tmp_path}/jarvis.db"
    await in_flight(url)
    with anyio.fail_after(120):
        done = await anyio.run_process(
            jarvis_argv("run", "--ticks", "1", "--http-port", "0"),
            cwd=tmp_path,
            env=jarvis_env(tmp_path),
            check=False,
        )
    assert done.returncode == 0, done.stderr.decode()
    assert [e.action_id for e in await outcomes(url)] == [ACTION_ID]
