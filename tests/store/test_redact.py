"""Known secrets are redacted on every write path of the store, spool included."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from jarvis.model import Event, EventKind, RetryState
from jarvis.store import EventStore, MemoryBackend, Redactor
from jarvis.store.redact import Storable

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
    """The spool is written through the same redaction as the database, so the file never
    holds the secret."""
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


@pytest.mark.anyio
async def test_a_batch_that_takes_the_deduplicating_path_is_redacted_too(db_url: str) -> None:
    """A key repeated in a batch sends PostgreSQL's flush down its second path (a temp table,
    then INSERT ... SELECT): redaction happens there as on the direct COPY."""
    store = await EventStore.connect(db_url, auto_migrate=True, redactor=Redactor([SECRET]))
    try:
        store.append([leaky_event(), leaky_event()])
        result = await store.flush()
        events = await store.events(limit=5)
    finally:
        await store.aclose()
    assert result.written == 2  # both went to the database; one was a replay of the other
    (event,) = events
    assert event.reason == "connect to postgresql://jarvis:[redacted]@db failed"


@pytest.mark.anyio
async def test_an_intent_whose_key_holds_a_secret_can_be_retracted_before_the_flush() -> None:
    """`retract` takes the key the caller knows. Redacting at ``append`` buffered the event
    under ``[redacted]``, so the retraction missed it and the flush wrote an intent whose
    action was never taken."""
    store = await EventStore.in_memory(redactor=Redactor([SECRET]))
    key = f"intent:sim://svc:restart:{SECRET}"
    store.append(
        [Event(EventKind.ACTION_STARTED, NOW, key, resource="sim://svc", action_id="act-1")]
    )
    store.retract(key)
    await store.flush()
    assert await store.events(limit=5) == []


def test_a_storable_batch_reads_as_the_redactor_makes_each_event() -> None:
    """`Storable` is the batch a backend writes: every way of reading it redacts."""
    redactor = Redactor([SECRET])
    clean = Event(EventKind.TICK_STARTED, NOW, "tick-1")
    batch = Storable([leaky_event(), clean], redactor)
    expected = [redactor.storable(leaky_event()), clean]
    assert len(batch) == 2
    assert list(batch) == expected
    assert [batch[0], batch[1], batch[-1]] == [*expected, clean]
    assert batch[1:] == [clean]
    assert SECRET not in repr(list(batch))


def test_short_secrets_are_not_redacted() -> None:
    """A secret under four characters would shred ordinary words; it is left alone."""
    assert Redactor(["abc", "abcd"]).text("abc abcd") == "abc [redacted]"
