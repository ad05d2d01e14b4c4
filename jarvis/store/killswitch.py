"""Where the kill switch lives: a row in the event database, or a hash in Redis.

The safety guard reads the switch right before every action is applied, so
`read()` is a single round trip, and a switch that cannot be read raises
StoreError (the guard then blocks: fail-safe). The CLI and the admin API
`write()` it. The app picks Redis when ``redis_url`` is configured, the
database otherwise.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.typing import EncodableT
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from jarvis.model import KillSwitchState
from jarvis.store.engine import masked
from jarvis.store.errors import StoreError, describe
from jarvis.store.tables import killswitch

__all__ = ["DbKillSwitch", "KillSwitchBackend", "RedisKillSwitch"]

REDIS_TIMEOUT_S = 1.0
"""Connect and socket timeout: an unreachable Redis must fail a read fast."""


class KillSwitchBackend(Protocol):
    """Reads and writes the one kill-switch state."""

    async def read(self) -> KillSwitchState:
        """The current state; raises StoreError when it cannot be read."""
        ...

    async def write(self, state: KillSwitchState) -> None: ...

    async def aclose(self) -> None: ...


class DbKillSwitch:
    """The kill switch as row id=1 of the ``killswitch`` table; no row means released."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        # On PostgreSQL a read needs no transaction: autocommit spares the
        # BEGIN and ROLLBACK round trips around the one SELECT.
        self._reader = (
            engine.execution_options(isolation_level="AUTOCOMMIT")
            if engine.dialect.name == "postgresql"
            else engine
        )
        self._query = select(
            killswitch.c.engaged, killswitch.c.actor, killswitch.c.reason, killswitch.c.changed_at
        ).where(killswitch.c.id == 1)
        dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
        upsert = dialect.insert(killswitch)
        self._upsert = upsert.on_conflict_do_update(
            index_elements=[killswitch.c.id],
            set_={
                name: upsert.excluded[name] for name in ("engaged", "actor", "reason", "changed_at")
            },
        )

    async def read(self) -> KillSwitchState:
        for attempt in (1, 2):
            try:
                async with self._reader.connect() as connection:
                    row = (await connection.execute(self._query)).mappings().first()
                break
            except DBAPIError as exc:
                # A pooled connection from before a database restart: retry once, fresh.
                if attempt == 1 and exc.connection_invalidated:
                    continue
                raise self._error("read", exc) from exc
            except (SQLAlchemyError, OSError) as exc:
                raise self._error("read", exc) from exc
        if row is None:
            return KillSwitchState(engaged=False)
        return KillSwitchState(
            engaged=bool(row["engaged"]),
            actor=row["actor"],
            reason=row["reason"],
            changed_at=row["changed_at"],
        )

    async def write(self, state: KillSwitchState) -> None:
        values = {
            "id": 1,
            "engaged": state.engaged,
            "actor": state.actor,
            "reason": state.reason,
            "changed_at": state.changed_at,
        }
        try:
            async with self._engine.begin() as connection:
                await connection.execute(self._upsert, values)
        except (SQLAlchemyError, OSError) as exc:
            raise self._error("write", exc) from exc

    async def aclose(self) -> None:
        """Nothing to release: the engine belongs to whoever passed it in."""

    def _error(self, verb: str, exc: BaseException) -> StoreError:
        return StoreError(
            f"cannot {verb} the kill switch in {masked(self._engine.url)}: {describe(exc)}"
        )


class RedisKillSwitch:
    """The kill switch as a Redis hash (engaged, actor, reason, changed_at)."""

    def __init__(self, url: str, key: str = "jarvis:killswitch") -> None:
        self._key = key
        self._client: redis.asyncio.Redis = redis.asyncio.Redis.from_url(
            url,
            socket_timeout=REDIS_TIMEOUT_S,
            socket_connect_timeout=REDIS_TIMEOUT_S,
            # Retrying would turn a fail-fast read into a slow one; the guard
            # blocks on failure and reads again before the next action anyway.
            retry=Retry(NoBackoff(), 0),
            decode_responses=True,
        )
        pool_kwargs = self._client.connection_pool.connection_kwargs
        self._where = f"Redis at {pool_kwargs.get('host', '?')}:{pool_kwargs.get('port', '?')}"

    async def read(self) -> KillSwitchState:
        try:
            raw = await self._client.hgetall(self._key)
        except (RedisError, OSError) as exc:
            raise StoreError(
                f"cannot read the kill switch from {self._where}: {describe(exc)}"
            ) from exc
        if not raw:
            return KillSwitchState(engaged=False)
        fields = {_text(key): _text(value) for key, value in raw.items()}
        try:
            changed = fields.get("changed_at") or None
            return KillSwitchState(
                engaged=fields.get("engaged") == "1",
                actor=fields.get("actor", ""),
                reason=fields.get("reason", ""),
                changed_at=None if changed is None else datetime.fromisoformat(changed),
            )
        except ValueError as exc:
            raise StoreError(
                f"kill switch hash {self._key!r} in {self._where} is damaged: {exc}"
            ) from exc

    async def write(self, state: KillSwitchState) -> None:
        mapping: dict[EncodableT, EncodableT] = {
            "engaged": "1" if state.engaged else "0",
            "actor": state.actor,
            "reason": state.reason,
            "changed_at": "" if state.changed_at is None else state.changed_at.isoformat(),
        }
        try:
            await self._client.hset(self._key, mapping=mapping)
        except (RedisError, OSError) as exc:
            raise StoreError(
                f"cannot write the kill switch to {self._where}: {describe(exc)}"
            ) from exc

    async def aclose(self) -> None:
        await self._client.aclose()


def _text(value: bytes | str) -> str:
    # The client decodes responses; this only narrows redis's bytes-or-str type.
    return value.decode() if isinstance(value, bytes) else value
