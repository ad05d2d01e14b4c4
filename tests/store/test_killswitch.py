"""Kill-switch backends: the database row and the Redis hash."""

from __future__ import annotations

import socket
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest
from redis.typing import EncodableT
from sqlalchemy import text

from jarvis.model import Event, EventKind, KillSwitchState
from jarvis.store import (
    DbKillSwitch,
    EventStore,
    KillSwitchBackend,
    MemoryKillSwitch,
    StoreError,
)
from jarvis.store.errors import FlipOverrunError
from jarvis.store.redis_killswitch import RedisKillSwitch
from tests.loopback import free_port
from tests.private_redis import private_redis

pytestmark = pytest.mark.anyio

ENGAGED = KillSwitchState(
    engaged=True,
    actor="alice@ops",
    reason="incident 42: bad deploy",
    changed_at=datetime(2025, 3, 1, 12, 0, 5, 250000, tzinfo=UTC),
)


async def _round_trip(switch: KillSwitchBackend, initial: KillSwitchState | None = None) -> None:
    assert await switch.read() == initial
    await switch.write(ENGAGED)
    assert await switch.read() == ENGAGED
    released = KillSwitchState(engaged=False, actor="bob", reason="fixed", changed_at=None)
    await switch.write(released)
    assert await switch.read() == released
    await switch.aclose()


async def test_db_killswitch_round_trips_a_state(db_url: str) -> None:
    """An absent row reads as no record; a written state reads back equal."""
    store = await EventStore.connect(db_url, auto_migrate=True)
    try:
        await _round_trip(DbKillSwitch(store.engine))
    finally:
        await store.aclose()


SECOND = KillSwitchState(
    engaged=True,
    actor="oncall",
    reason="second incident",
    changed_at=datetime(2025, 3, 1, 12, 0, 9, tzinfo=UTC),
)
RELEASED = KillSwitchState(
    engaged=False, actor="alice@ops", reason="all clear", changed_at=SECOND.changed_at
)


@pytest.mark.parametrize("before", [ENGAGED, None], ids=["engaged", "no-row"])
async def test_a_db_release_does_not_undo_an_engage_committed_while_it_was_recorded(
    db_url: str, before: KillSwitchState | None
) -> None:
    """Another process's engage, committed between a release's record and its write, stays:
    the release fails as an overrun and writes nothing."""
    store = await EventStore.connect(db_url, auto_migrate=True)
    other = await EventStore.connect(db_url)
    try:
        switch = DbKillSwitch(store.engine)
        if before is not None:
            await switch.write(before)
        recorded: list[bool] = []

        async def record() -> None:
            recorded.append(True)
            await DbKillSwitch(other.engine).write(SECOND)  # its own connection, committed

        with pytest.raises(FlipOverrunError, match="changed while the release was recorded"):
            await switch.release(RELEASED, record)

        assert recorded == [True]
        assert await switch.read() == SECOND
    finally:
        await other.aclose()
        await store.aclose()


async def test_a_db_release_nobody_raced_writes_the_released_state(db_url: str) -> None:
    """With no flip in between, a release over an engaged row or none writes."""
    store = await EventStore.connect(db_url, auto_migrate=True)
    try:
        switch = DbKillSwitch(store.engine)
        for before in (ENGAGED, None):
            if before is None:
                async with store.engine.begin() as connection:
                    await connection.execute(text("DELETE FROM killswitch"))
            else:
                await switch.write(before)
            recorded: list[bool] = []

            async def record(recorded: list[bool] = recorded) -> None:
                recorded.append(True)

            await switch.release(RELEASED, record)
            assert recorded == [True]
            assert await switch.read() == RELEASED
    finally:
        await store.aclose()


async def test_the_memory_switch_does_not_undo_an_engage_made_while_a_release_was_recorded() -> (
    None
):
    """The simulation's stand-in for Redis keeps its promise: the release fails as an overrun."""
    switch = MemoryKillSwitch()
    await switch.write(ENGAGED)

    async def record() -> None:
        await switch.write(SECOND)

    with pytest.raises(FlipOverrunError, match="changed while the release was recorded"):
        await switch.release(RELEASED, record)
    assert await switch.read() == SECOND

    async def nothing() -> None:
        pass

    await switch.release(RELEASED, nothing)
    assert await switch.read() == RELEASED


async def test_memory_killswitch_round_trips_and_fails_like_a_lost_store() -> None:
    """The simulation's switch reads back what was written, and raises StoreError while away."""
    switch = MemoryKillSwitch()
    await _round_trip(switch, initial=KillSwitchState(engaged=False))
    switch.available = False
    with pytest.raises(StoreError, match="cannot read the kill switch"):
        await switch.read()
    with pytest.raises(StoreError, match="cannot write the kill switch"):
        await switch.write(ENGAGED)
    switch.available = True
    state = await switch.read()
    assert state is not None and state.engaged is False


async def test_the_in_memory_store_has_no_sql_engine() -> None:
    """Asking the simulation's store for a database kill switch is a clear error."""
    store = await EventStore.in_memory()
    with pytest.raises(StoreError, match="memory:// event store has no SQL engine"):
        DbKillSwitch(store.engine)


async def test_sqlite_accepts_a_killswitch_write_while_the_daemon_reads(tmp_path: Path) -> None:
    """In WAL mode a second engine flips the switch while the first holds a read transaction."""
    url = f"sqlite+aiosqlite:///{tmp_path}/jarvis.db"
    daemon = await EventStore.connect(url)
    cli = await EventStore.connect(url)
    try:
        daemon.append([Event(EventKind.TICK_STARTED, datetime.now(UTC), "t1")])
        await daemon.flush()
        async with daemon.engine.connect() as held:
            mode = (await held.execute(text("PRAGMA journal_mode"))).scalar_one()
            assert mode == "wal"
            # An open read transaction: in rollback-journal mode this blocks writers.
            assert (await held.execute(text("SELECT count(*) FROM events"))).scalar_one() == 1
            await DbKillSwitch(cli.engine).write(ENGAGED)
        assert await DbKillSwitch(daemon.engine).read() == ENGAGED
    finally:
        await cli.aclose()
        await daemon.aclose()


async def test_redis_killswitch_round_trips_a_state(redis_url: str) -> None:
    """An absent hash reads as no record; a written state reads back equal."""
    switch = RedisKillSwitch(redis_url, key="jarvis:test:killswitch")
    try:
        assert await switch.read() is None
        await switch.write(ENGAGED)
        assert await switch.read() == ENGAGED
        await switch.write(KillSwitchState(engaged=False, actor="bob"))
        assert await switch.read() == KillSwitchState(engaged=False, actor="bob")
    finally:
        await switch.aclose()


async def test_redis_killswitch_on_a_closed_port_raises_store_error() -> None:
    """Reading from a Redis that does not answer raises StoreError naming where it looked."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    switch = RedisKillSwitch(f"redis://127.0.0.1:{port}/0")
    try:
        with pytest.raises(StoreError, match=f"Redis at 127.0.0.1:{port}"):
            await switch.read()
        with pytest.raises(StoreError, match="cannot write"):
            await switch.write(ENGAGED)
    finally:
        await switch.aclose()


async def test_db_killswitch_read_on_a_lost_database_raises_store_error(tmp_path: Path) -> None:
    """When the switch's table cannot be read, read() raises StoreError (the guard fails safe)."""
    url = f"sqlite+aiosqlite:///{tmp_path}/jarvis.db"
    store = await EventStore.connect(url)
    try:
        async with store.engine.begin() as connection:
            await connection.execute(text("DROP TABLE killswitch"))
        with pytest.raises(StoreError, match="cannot read the kill switch"):
            await DbKillSwitch(store.engine).read()
    finally:
        await store.aclose()


async def test_a_db_release_that_cannot_read_the_row_records_nothing(tmp_path: Path) -> None:
    """The row read before recording fails: no event is recorded, and the error says the
    switch is left as it was (it said only "cannot read")."""
    store = await EventStore.connect(f"sqlite+aiosqlite:///{tmp_path}/jarvis.db")
    try:
        async with store.engine.begin() as connection:
            await connection.execute(text("DROP TABLE killswitch"))
        recorded: list[bool] = []

        async def record() -> None:
            recorded.append(True)

        with pytest.raises(StoreError, match="release is not recorded, the kill switch is left"):
            await DbKillSwitch(store.engine).release(RELEASED, record)
        assert recorded == []
    finally:
        await store.aclose()


@pytest.mark.parametrize(
    "tampered",
    [
        {"engaged": "true", "actor": "", "reason": "", "changed_at": ""},
        {"engaged": " 1", "actor": "", "reason": "", "changed_at": ""},
        {"engaged": "0 ", "actor": "", "reason": "", "changed_at": ""},
        {"engaged": "0"},
        {"engaged": "0", "actor": "", "reason": "", "changed_at": "", "note": "x"},
        {"engaged": "0", "actor": "", "reason": "", "changed_at": "2025-03-01T12:00:00"},
        {"engaged": "0", "actor": "", "reason": "", "changed_at": "yesterday"},
        {"engaged": "1", "actor": b"\xff\xfe\x1b[2J", "reason": "", "changed_at": ""},
    ],
    ids=[
        "true",
        "space-1",
        "0-space",
        "partial",
        "extra-field",
        "naive-time",
        "bad-time",
        "not-utf8",
    ],
)
async def test_a_tampered_redis_hash_is_damage_and_fails_safe(
    redis_url: str, tampered: dict[EncodableT, EncodableT]
) -> None:
    """Anything but exactly what Jarvis writes raises StoreError: the guard reads it as engaged."""
    import redis

    key = "jarvis:test:killswitch"
    client = redis.Redis.from_url(redis_url)
    client.hset(key, mapping=tampered)
    client.close()
    switch = RedisKillSwitch(redis_url, key=key)
    try:
        with pytest.raises(StoreError, match="is damaged"):
            await switch.read()
    finally:
        await switch.aclose()


@pytest.mark.parametrize(
    "damage",
    [
        ("hset", {"engaged": "1", "actor": "", "reason": "", "changed_at": "", "note": "x"}),
        ("set", "engaged"),
        ("rpush", "engaged"),
    ],
    ids=["extra-field", "a-string", "a-list"],
)
async def test_a_write_replaces_a_damaged_key_whole(
    redis_url: str, damage: tuple[str, dict[EncodableT, EncodableT] | str]
) -> None:
    """A flip over a damaged hash, or a key of another type, reads back exactly as written."""
    import redis

    key = "jarvis:test:killswitch"
    command, value = damage
    client = redis.Redis.from_url(redis_url)
    if isinstance(value, dict):
        client.hset(key, mapping=value)
    else:
        getattr(client, command)(key, value)
    client.close()
    switch = RedisKillSwitch(redis_url, key=key)
    try:
        await switch.write(ENGAGED)
        assert await switch.read() == ENGAGED
        released = KillSwitchState(engaged=False, actor="bob", reason="fixed")
        await switch.write(released)
        assert await switch.read() == released
    finally:
        await switch.aclose()


async def test_a_redis_on_a_unix_socket_is_named_by_its_path(tmp_path: Path) -> None:
    """An unreachable Redis socket is named by its path in the error, not as ``?:?``."""
    sock = tmp_path / "redis.sock"
    switch = RedisKillSwitch(f"unix://{sock}?db=0")
    try:
        with pytest.raises(StoreError, match=f"Redis at {sock}:"):
            await switch.read()
        with pytest.raises(StoreError, match=f"Redis at {sock}:"):
            await switch.write(ENGAGED)
    finally:
        await switch.aclose()


async def test_a_db_release_repairs_a_damaged_sqlite_row(tmp_path: Path) -> None:
    """A release over a row whose time SQLite holds as garbage writes the released state."""
    store = await EventStore.connect(f"sqlite+aiosqlite:///{tmp_path}/jarvis.db")
    try:
        switch = DbKillSwitch(store.engine)
        await switch.write(ENGAGED)
        async with store.engine.begin() as connection:
            await connection.execute(text("UPDATE killswitch SET changed_at = 'at noon'"))

        async def record() -> None:
            pass

        await switch.release(RELEASED, record)
        assert await switch.read() == RELEASED
    finally:
        await store.aclose()


async def test_a_damaged_sqlite_row_is_a_store_error(tmp_path: Path) -> None:
    """A switch row whose time SQLite holds as garbage raises StoreError, not a bare ValueError."""
    store = await EventStore.connect(f"sqlite+aiosqlite:///{tmp_path}/jarvis.db")
    try:
        switch = DbKillSwitch(store.engine)
        await switch.write(ENGAGED)
        async with store.engine.begin() as connection:
            await connection.execute(text("UPDATE killswitch SET changed_at = 'at noon'"))
        with pytest.raises(StoreError, match=r"kill switch row .* is damaged: .*'at noon'"):
            await switch.read()
    finally:
        await store.aclose()


def test_a_read_only_replica_is_named_as_the_reason_a_flip_fails(tmp_path: Path) -> None:
    """A flip on a read-only replica names READONLY, not the EXECABORT that followed it."""
    with private_redis(tmp_path, ["--replicaof", "127.0.0.1", str(free_port())]) as replica:

        async def flip() -> None:
            switch = RedisKillSwitch(replica.url)
            try:
                await switch.write(ENGAGED)
            finally:
                await switch.aclose()

        with pytest.raises(StoreError, match=r"ReadOnlyError: .*read only replica"):
            anyio.run(flip)
