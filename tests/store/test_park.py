"""Parking: what the shutdown deadline cut off goes to the spool without the database.

`jarvis run` stops within its shutdown grace (`jarvis.loop.shutdown`); a flush
the deadline cuts keeps its events in the buffer, and `EventStore.park` spools
them before the process exits, by a failed flush's rules: a leader's intents
and ledger rows are dropped, its facts kept.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from jarvis.model import Event, EventKind, RetryState
from jarvis.store import EventStore
from jarvis.store.fence import Fence
from jarvis.store.memory import MemoryBackend
from jarvis.store.spool import Spool
from tests.store.spooled import T0, ev, keys

pytestmark = pytest.mark.anyio

INTENT = Event(EventKind.ACTION_STARTED, T0, "intent", resource="sim://a", action_id="act-1")
OUTCOME = Event(EventKind.ACTION_APPLIED, T0, "outcome", resource="sim://a", action_id="act-1")
ROW = RetryState("sim://a", "restart", attempts=(T0,), consecutive_failures=0)


def spooled(path: Path) -> tuple[list[str], list[RetryState]]:
    spool = Spool(path)
    try:
        head = spool.head()
        return keys(head.events), list(head.retries)
    finally:
        spool.close()


async def buffered(path: Path, backend: MemoryBackend) -> EventStore:
    store = await EventStore.in_memory(spool_path=path, backend=backend)
    store.append([ev("fact"), INTENT, OUTCOME])
    store.stage_retry(ROW)
    return store


async def test_a_leader_parks_its_facts_and_drops_its_decisions(tmp_path: Path) -> None:
    """Under a fence the outcome is spooled; the intent and the ledger row are not."""
    path, backend = tmp_path / "spool.jsonl", MemoryBackend()
    store = await buffered(path, backend)
    store.fence = Fence("jarvis-loop", "replica-a", 3)

    parked = await store.park()
    await store.aclose()

    assert parked == 2
    assert spooled(path) == (["fact", "outcome"], [])
    assert await backend.count_events(None) == 0  # the database was not tried


async def test_a_single_node_parks_everything(tmp_path: Path) -> None:
    """Unfenced, as on SQLite, the intent and the ledger row are spooled with the facts."""
    path, backend = tmp_path / "spool.jsonl", MemoryBackend()
    store = await buffered(path, backend)

    parked = await store.park()
    await store.aclose()

    assert parked == 3
    assert spooled(path) == (["fact", "intent", "outcome"], [ROW])


async def test_parking_empties_the_buffer(tmp_path: Path) -> None:
    """What was parked is not written again by a later flush; with nothing buffered, none."""
    path, backend = tmp_path / "spool.jsonl", MemoryBackend()
    store = await buffered(path, backend)
    try:
        assert await store.park() == 3
        assert await store.park() == 0
        assert store.spooled == 3
    finally:
        await store.aclose()


async def test_without_a_spool_parking_says_what_is_lost(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No spool file (another process owns it): nothing is spooled and the log says so."""
    store = await EventStore.in_memory()
    store.append([ev("fact")])

    assert await store.park() == 0
    assert "events lost" in capsys.readouterr().out
