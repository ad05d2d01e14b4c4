"""The retry ledger: staged upserts, loading and resetting, on both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jarvis.model import RetryState
from jarvis.store import EventStore

pytestmark = pytest.mark.anyio

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def state(resource: str, kind: str = "restart", failures: int = 1, **extra: object) -> RetryState:
    return RetryState(
        resource=resource,
        action_kind=kind,
        attempts=tuple(T0 + timedelta(minutes=i) for i in range(failures)),
        consecutive_failures=failures,
        **extra,  # type: ignore[arg-type]  # the remaining RetryState fields, by name
    )


async def test_staged_retry_round_trips_every_field(store: EventStore) -> None:
    """A staged retry state comes back from load_retries equal, after a flush."""
    full = RetryState(
        resource="sim://api",
        action_kind="scale",
        attempts=(T0, T0 + timedelta(seconds=30)),
        consecutive_failures=2,
        retry_after=T0 + timedelta(minutes=2),
        quarantined=True,
        last_error="ThrottlingException: rate exceeded",
        updated_at=T0 + timedelta(seconds=31),
    )
    store.stage_retry(full)
    assert await store.load_retries() == {}
    await store.flush()
    assert await store.load_retries() == {("sim://api", "scale"): full}


async def test_latest_staged_state_per_key_wins(store: EventStore) -> None:
    """Staging twice before a flush, or flushing a newer state later, keeps only the newest."""
    store.stage_retry(state("sim://a", failures=1))
    store.stage_retry(state("sim://a", failures=2))
    store.stage_retry(state("sim://a", kind="scale", failures=1))
    await store.flush()
    store.stage_retry(state("sim://a", failures=3, quarantined=True))
    await store.flush()
    ledger = await store.load_retries()
    assert ledger[("sim://a", "restart")].consecutive_failures == 3
    assert ledger[("sim://a", "restart")].quarantined is True
    assert len(ledger[("sim://a", "restart")].attempts) == 3
    assert ledger[("sim://a", "scale")].consecutive_failures == 1


async def test_reset_retries_deletes_only_that_resource(store: EventStore) -> None:
    """reset_retries removes every action kind of one resource and says how many."""
    for resource, kind in [("sim://a", "restart"), ("sim://a", "scale"), ("sim://b", "restart")]:
        store.stage_retry(state(resource, kind))
    await store.flush()
    assert await store.reset_retries("sim://a") == 2
    assert set(await store.load_retries()) == {("sim://b", "restart")}
    assert await store.reset_retries("sim://nothing") == 0


async def test_reset_drops_unflushed_changes_for_the_resource(store: EventStore) -> None:
    """A reset also forgets a staged, not yet flushed state of that resource."""
    store.stage_retry(state("sim://a"))
    await store.reset_retries("sim://a")
    await store.flush()
    assert await store.load_retries() == {}
