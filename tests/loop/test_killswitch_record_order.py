"""The order of a flip's two writes: an engage acts first, a release is recorded first.

The switch lives in Redis and its flips in the event database, so a flip is
two writes. An engage must stop actions even with the database away; a
release that took effect before its event reached the database would let a
leader's actions be recorded ahead of it, and the record would show them
taken under an engaged switch (found by the simulation: replica faults and
the operator's release through a partitioned replica).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest
import redis

from jarvis.loop.clock import VirtualClock
from jarvis.loop.killswitch import KillSwitch
from jarvis.model import EventKind, KillSwitchState
from jarvis.store import DbKillSwitch, EventStore, KillSwitchBackend, StoreError, upgrade
from jarvis.store.redis_killswitch import RedisKillSwitch
from tests.store.tcp_proxy import TcpProxy

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
FLIPS = [EventKind.KILLSWITCH_ENGAGED.value, EventKind.KILLSWITCH_RELEASED.value]


@pytest.fixture
async def switch(
    pg_url: str, redis_url: str, pg_proxy: TcpProxy, tmp_path: Path
) -> AsyncIterator[KillSwitch]:
    """A kill switch in Redis whose flips are recorded in PostgreSQL behind ``pg_proxy``."""
    await upgrade(pg_url)
    store = await EventStore.connect(pg_proxy.url_for(pg_url), spool_path=tmp_path / "spool.jsonl")
    backend = RedisKillSwitch(redis_url)
    try:
        yield KillSwitch(backend, store, VirtualClock(T0))
    finally:
        await backend.aclose()
        await store.aclose()


async def recorded_flips(switch: KillSwitch) -> list[EventKind]:
    await switch.store.flush()
    return [event.kind for event in await switch.store.events(kinds=FLIPS)]


async def test_a_release_the_database_cannot_record_leaves_the_switch_engaged(
    switch: KillSwitch, pg_proxy: TcpProxy
) -> None:
    """With the database away a release fails, names why, and the switch stays engaged."""
    await switch.set(engaged=True, actor="ops", reason="drill")
    await pg_proxy.stop()

    with pytest.raises(StoreError, match="stays engaged"):
        await switch.set(engaged=False, actor="ops", reason="all clear")

    assert (await switch.backend.read()) is not None
    assert (await switch.read()).engaged
    assert switch.store.spooled == 0  # not journaled: it never took effect
    await pg_proxy.start()
    assert await recorded_flips(switch) == [EventKind.KILLSWITCH_ENGAGED]


class Witness:
    """A kill-switch backend in Redis that, right before each write, reads what PostgreSQL
    has committed (a release's, once it is recorded: inside Redis's own release)."""

    def __init__(self, redis_url: str, pg_url: str) -> None:
        self._switch = RedisKillSwitch(redis_url)
        self._pg_url = pg_url
        self.seen: list[tuple[bool, list[EventKind]]] = []
        """Per write: the state written, and the flips committed at that moment."""

    async def read(self) -> KillSwitchState | None:
        return await self._switch.read()

    async def write(self, state: KillSwitchState) -> None:
        await self._witness(state)
        await self._switch.write(state)

    async def release(self, state: KillSwitchState, record: Callable[[], Awaitable[None]]) -> None:
        async def witnessed() -> None:
            await record()
            await self._witness(state)

        await self._switch.release(state, witnessed)

    async def _witness(self, state: KillSwitchState) -> None:
        reader = await EventStore.connect(self._pg_url)
        try:
            committed = [event.kind for event in await reader.events(kinds=FLIPS)]
        finally:
            await reader.aclose()
        self.seen.append((state.engaged, committed))

    async def aclose(self) -> None:
        await self._switch.aclose()


async def test_a_release_is_committed_before_the_switch_releases(
    pg_url: str, redis_url: str, tmp_path: Path
) -> None:
    """When the switch is written released, the release is already a row of the event database."""
    await upgrade(pg_url)
    store = await EventStore.connect(pg_url, spool_path=tmp_path / "spool.jsonl")
    witness = Witness(redis_url, pg_url)
    switch = KillSwitch(witness, store, VirtualClock(T0))
    try:
        await switch.set(engaged=True, actor="ops", reason="drill")
        await switch.set(engaged=False, actor="ops", reason="all clear")
    finally:
        await witness.aclose()
        await store.aclose()

    assert witness.seen == [
        (True, []),  # an engage acts first: it waits for no database
        (False, [EventKind.KILLSWITCH_ENGAGED, EventKind.KILLSWITCH_RELEASED]),
    ]


async def test_an_engage_acts_with_the_database_away_and_is_recorded_when_it_returns(
    switch: KillSwitch, pg_proxy: TcpProxy
) -> None:
    """An engage never waits for the database: it stops actions, and its event is spooled."""
    await pg_proxy.stop()

    await switch.set(engaged=True, actor="ops", reason="database on fire")

    assert (await switch.read()).engaged
    assert switch.store.spooled == 1
    await pg_proxy.start()
    assert await recorded_flips(switch) == [EventKind.KILLSWITCH_ENGAGED]


async def test_an_engage_landing_while_a_release_is_recorded_is_not_undone(
    switch: KillSwitch, pg_url: str, redis_url: str, pg_proxy: TcpProxy, tmp_path: Path
) -> None:
    """Another terminal's engage, made between a release's record and its write, stays engaged."""
    await switch.set(engaged=True, actor="ops", reason="drill")
    other_store = await EventStore.connect(pg_url, spool_path=tmp_path / "other.jsonl")
    other = KillSwitch(RedisKillSwitch(redis_url), other_store, VirtualClock(T0))
    released: list[BaseException] = []

    async def release() -> None:
        try:
            await switch.set(engaged=False, actor="ops", reason="all clear")
        except StoreError as exc:
            released.append(exc)

    try:
        pg_proxy.freeze()
        async with anyio.create_task_group() as group:
            group.start_soon(release)
            await pg_proxy.holding()  # the release's event is on its way, not yet committed
            await other.set(engaged=True, actor="oncall", reason="second incident")
            pg_proxy.thaw()
    finally:
        pg_proxy.thaw()
        await other.backend.aclose()
        await other_store.aclose()

    state = await switch.read()
    assert (state.engaged, state.actor) == (True, "oncall")
    (error,) = released
    assert "changed while the release was recorded" in str(error)


async def test_a_release_that_lost_to_an_engage_leaves_the_engage_last_on_record(
    switch: KillSwitch, pg_url: str, redis_url: str, pg_proxy: TcpProxy, tmp_path: Path
) -> None:
    """The losing release's event was committed after the engage's: the record's last flip
    said "released", so a Redis restarted without its data read the switch as released."""
    await switch.set(engaged=True, actor="ops", reason="drill")
    other_store = await EventStore.connect(pg_url, spool_path=tmp_path / "other.jsonl")
    other = KillSwitch(RedisKillSwitch(redis_url), other_store, VirtualClock(T0))

    async def release() -> None:
        with pytest.raises(StoreError, match="changed while the release was recorded"):
            await switch.set(engaged=False, actor="ops", reason="all clear")

    try:
        pg_proxy.freeze()
        async with anyio.create_task_group() as group:
            group.start_soon(release)
            await pg_proxy.holding()
            await other.set(engaged=True, actor="oncall", reason="second incident")
            pg_proxy.thaw()
    finally:
        pg_proxy.thaw()
        await other.backend.aclose()
        await other_store.aclose()

    kinds = [EventKind.KILLSWITCH_ENGAGED.value, EventKind.KILLSWITCH_RELEASED.value]
    (last,) = await switch.store.events(limit=1, kinds=kinds)
    assert (last.kind, last.payload.get("actor")) == (EventKind.KILLSWITCH_ENGAGED, "oncall")
    redis.Redis.from_url(redis_url).flushdb()  # Redis restarted without its data
    state = await switch.read()
    assert (state.engaged, state.actor) == (True, "oncall")


class EngageWhileRecorded:
    """A kill-switch backend whose release is recorded, then another process engages, then
    the release writes: the race made to happen every time, not by timing."""

    def __init__(self, backend: KillSwitchBackend, other: KillSwitch) -> None:
        self._backend = backend
        self._other = other

    async def read(self) -> KillSwitchState | None:
        return await self._backend.read()

    async def write(self, state: KillSwitchState) -> None:
        await self._backend.write(state)

    async def release(self, state: KillSwitchState, record: Callable[[], Awaitable[None]]) -> None:
        async def record_then_engage() -> None:
            await record()
            await self._other.set(engaged=True, actor="oncall", reason="second incident")

        await self._backend.release(state, record_then_engage)

    async def aclose(self) -> None:
        await self._backend.aclose()


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest) -> str:
    """A fresh database on each backend in turn."""
    url: str = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
    return url


async def test_an_engage_landing_while_a_database_release_is_recorded_is_not_undone(
    db_url: str, tmp_path: Path
) -> None:
    """With the switch in the event database, another process's engage committed between a
    release's record and its write stays engaged, the release fails, and that engage is the
    last flip on record."""
    await upgrade(db_url)
    store = await EventStore.connect(db_url, spool_path=tmp_path / "spool.jsonl")
    other_store = await EventStore.connect(db_url, spool_path=tmp_path / "other.jsonl")
    other = KillSwitch(DbKillSwitch(other_store.engine), other_store, VirtualClock(T0))
    backend = EngageWhileRecorded(DbKillSwitch(store.engine), other)
    switch = KillSwitch(backend, store, VirtualClock(T0))
    try:
        await switch.set(engaged=True, actor="ops", reason="drill")

        with pytest.raises(StoreError, match="changed while the release was recorded"):
            await switch.set(engaged=False, actor="ops", reason="all clear")

        state = await switch.read()
        assert (state.engaged, state.actor, state.reason) == (True, "oncall", "second incident")
        (last,) = await store.events(limit=1, kinds=FLIPS)
        assert (last.kind, last.payload.get("actor")) == (EventKind.KILLSWITCH_ENGAGED, "oncall")
    finally:
        await other_store.aclose()
        await store.aclose()


class CutAfterRecord:
    """A kill-switch backend whose release is recorded, then the switch's own server goes
    away (``cut``) before the release writes the switch: the failure made to happen every
    time, not by timing."""

    def __init__(self, backend: KillSwitchBackend, cut: Callable[[], Awaitable[None]]) -> None:
        self._backend = backend
        self._cut = cut

    async def read(self) -> KillSwitchState | None:
        return await self._backend.read()

    async def write(self, state: KillSwitchState) -> None:
        await self._backend.write(state)

    async def release(self, state: KillSwitchState, record: Callable[[], Awaitable[None]]) -> None:
        async def record_then_cut() -> None:
            await record()
            await self._cut()

        await self._backend.release(state, record_then_cut)

    async def aclose(self) -> None:
        await self._backend.aclose()


async def test_a_release_recorded_whose_database_switch_write_fails_says_it_stays_engaged(
    pg_url: str, pg_proxy: TcpProxy, tmp_path: Path
) -> None:
    """The release's event is committed, then the database goes before the row is written:
    the error says the release is on record but not applied and the switch stays engaged,
    which it does once the database is back.

    It said only "cannot write the kill switch in ...", as if nothing had been recorded."""
    await upgrade(pg_url)
    store = await EventStore.connect(pg_proxy.url_for(pg_url), spool_path=tmp_path / "spool.jsonl")
    backend = CutAfterRecord(DbKillSwitch(store.engine), pg_proxy.stop)
    switch = KillSwitch(backend, store, VirtualClock(T0))
    try:
        await switch.set(engaged=True, actor="ops", reason="drill")

        with pytest.raises(StoreError) as raised:
            await switch.set(engaged=False, actor="ops", reason="all clear")

        message = str(raised.value)
        assert "the release is recorded but not applied" in message, message
        assert "stays engaged" in message, message
        await pg_proxy.start()
        state = await switch.read()
        assert (state.engaged, state.reason) == (True, "drill")
    finally:
        await store.aclose()


async def test_a_release_recorded_whose_redis_write_fails_says_it_is_not_applied(
    pg_url: str, tmp_path: Path
) -> None:
    """The release's event is committed, then Redis goes before the switch is written: the
    error says the release is on record but not applied, and that Redis could not be written.

    It said another flip had landed first (redis-py raises WatchError for a watching
    connection that dies, too), and tried to record that flip again."""
    from tests.private_redis import private_redis

    await upgrade(pg_url)
    store = await EventStore.connect(pg_url, spool_path=tmp_path / "spool.jsonl")
    with private_redis(tmp_path) as server:

        async def stop_redis() -> None:
            server.stop()

        switch = KillSwitch(
            CutAfterRecord(RedisKillSwitch(server.url), stop_redis), store, VirtualClock(T0)
        )
        try:
            await switch.set(engaged=True, actor="ops", reason="drill")

            with pytest.raises(StoreError) as raised:
                await switch.set(engaged=False, actor="ops", reason="all clear")
        finally:
            await switch.backend.aclose()
            await store.aclose()

    message = str(raised.value)
    assert "the release is recorded but not applied" in message, message
    assert "cannot write the kill switch to Redis" in message, message
