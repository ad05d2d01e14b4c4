"""Known secrets are redacted on every write path of the store, spool included."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from jarvis.model import Event, EventKind, RetryState
from jarvis.store import EventStore, MemoryBackend, Redactor

SECRET = "hunter2-db-password"
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def leaky_event() -> Event:
    return Event(
        kind=EventKind.ACTION_FAILED,
        ts=NOW,
        idempotency_key="leaky",
        resource="sim://svc",
        reason=f"connect to postgresql://jarvis:{SECRET}@db failed",
        payload={"detail": [f"password={SECRET}"], SECRET: 1},
    )


@pytest.mark.anyio
async def test_events_and_ledger_rows_are_stored_without_the_secret(db_url: str) -> None:
    """A provider error quoting a password lands in the event and the ledger as [redacted]."""
    store = await EventStore.connect(db_url, auto_migrate=True, redactor=Redactor([SECRET]))
    try:
        store.append([leaky_event()])
        store.stage_retry(
            RetryState(
                resource="sim://svc",
                action_kind="restart",
                attempts=(NOW,),
                consecutive_failures=1,
                last_error=f"auth failed for {SECRET}",
                updated_at=NOW,
            )
        )
        await store.flush()
        (event,) = await store.events(limit=5)
        ledger = await store.load_retries()
    finally:
        await store.aclose()
    assert SECRET not in repr(event)
    assert event.reason == "connect to postgresql://jarvis:[redacted]@db failed"
    assert event.payload == {"detail": ["password=[redacted]"], "[redacted]": 1}
    assert ledger[("sim://svc", "restart")].last_error == "auth failed for [redacted]"


@pytest.mark.anyio
async def test_a_spooled_event_is_redacted_before_it_reaches_the_file(tmp_path: Path) -> None:
    """Redaction happens when the event is buffered, so the spool file never holds the secret."""
    spool_path = tmp_path / "spool.jsonl"
    backend = MemoryBackend()
    store = await EventStore.in_memory(
        spool_path=spool_path, backend=backend, redactor=Redactor([SECRET])
    )
    backend.available = False  # the database is away: the flush spools
    store.append([leaky_event()])
    result = await store.flush()
    assert result.spooled == 1
    text = spool_path.read_text()
    assert "[redacted]" in text
    assert SECRET not in text


def test_short_secrets_are_not_redacted() -> None:
    """A secret under four characters would shred ordinary words; it is left alone."""
    assert Redactor(["abc", "abcd"]).text("abc abcd") == "abc [redacted]"
