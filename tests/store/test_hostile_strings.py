"""Outside strings cannot stop recording: NUL, lone surrogates and NaN are made storable.

Before, one ``\\u0000`` in a kill-switch reason (admin API) or a model name read
from Redis made every flush fail on PostgreSQL, across restarts, since the
event stayed in the buffer or the spool; a lone surrogate failed any UTF-8
encoder, the spool file's included; a NaN in a payload failed JSON encoding.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from jarvis.loop.clock import VirtualClock
from jarvis.loop.killswitch import KillSwitch
from jarvis.model import Event, EventKind, KillSwitchState, RetryState
from jarvis.store import DbKillSwitch, EventStore, upgrade
from jarvis.store.storable import safe_event
from tests.store.tcp_proxy import TcpProxy

pytestmark = pytest.mark.anyio

NOW = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
HOSTILE = "a\x00b\ud800c"


def hostile_event(key: str) -> Event:
    return Event(
        kind=EventKind.ALERT,
        ts=NOW,
        idempotency_key=key,
        resource=f"route://chat{HOSTILE}",
        policy="cost",
        reason=f"model {HOSTILE} is gone",
        payload={HOSTILE: [HOSTILE, float("nan"), {"x": float("inf")}], "ok": 1.5},
    )


async def test_hostile_strings_are_written_and_later_events_still_land(store: EventStore) -> None:
    """The hostile event is stored with replacements, and the next flush works as usual."""
    store.append([hostile_event("hostile-1")])
    store.stage_retry(RetryState(resource=f"sim://x{HOSTILE}", action_kind="restart"))
    await store.flush()
    store.append([Event(EventKind.TICK_STARTED, NOW, "plain-1")])
    await store.flush()

    hostile, plain = await store.events(limit=10)
    assert plain.idempotency_key == "plain-1"
    assert hostile.reason == "model a\ufffdb?c is gone"
    assert hostile.resource == "route://chata\ufffdb?c"
    assert hostile.payload == {"a\ufffdb?c": ["a\ufffdb?c", None, {"x": None}], "ok": 1.5}
    ledger = await store.load_retries()
    assert ("sim://xa\ufffdb?c", "restart") in ledger


async def test_hostile_strings_survive_the_spool(
    tmp_path: Path, pg_url: str, pg_proxy: TcpProxy
) -> None:
    """While PostgreSQL is away, a hostile event spools to the file and replays later."""
    await upgrade(pg_url)
    spool = tmp_path / "spool.jsonl"
    store = await EventStore.connect(pg_proxy.url_for(pg_url), spool_path=spool)
    try:
        await pg_proxy.stop()
        store.append([hostile_event("hostile-spooled")])
        assert (await store.flush()).spooled == 1
        await pg_proxy.start()
        assert (await store.flush()).replayed == 1
        (event,) = await store.events(limit=10)
        assert event.reason == "model a\ufffdb?c is gone"
    finally:
        await store.aclose()


async def test_a_nul_in_a_kill_switch_reason_is_recorded_on_postgres(pg_url: str) -> None:
    """An operator's reason with a NUL engages the switch and is recorded, not refused."""
    store = await EventStore.connect(pg_url, auto_migrate=True)
    try:
        switch = KillSwitch(DbKillSwitch(store.engine), store, VirtualClock())
        state = await switch.set(engaged=True, actor="api:\x00", reason="stop\x00now")
        assert state == KillSwitchState(True, "api:\ufffd", "stop\ufffdnow", state.changed_at)
        assert await switch.read() == state
        (flip,) = await store.events(kinds=[EventKind.KILLSWITCH_ENGAGED.value])
        assert flip.reason == "stop\ufffdnow"
    finally:
        await store.aclose()


def test_a_clean_event_is_passed_through_unchanged() -> None:
    """Nothing is copied when nothing needs replacing: the same object comes back."""
    event = Event(EventKind.ALERT, NOW, "k", reason="fine", payload={"a": [1, "b", 2.5]})
    assert safe_event(event) is event
