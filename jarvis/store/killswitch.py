"""Where the kill switch lives: a row in the event database, or a hash in Redis.

The safety guard reads the switch right before every action is applied, so
`read()` is a single round trip, and a switch that cannot be read raises
StoreError (the guard then blocks: fail-safe). The CLI and the admin API
`write()` it. The app picks Redis when ``redis_url`` is configured, the
database otherwise.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from jarvis.model import KillSwitchState
from jarvis.store.engine import masked
from jarvis.store.errors import StoreError, describe
from jarvis.store.tables import killswitch

__all__ = ["DbKillSwitch", "KillSwitchBackend"]


class KillSwitchBackend(Protocol):
    """Reads and writes the one kill-switch state."""

    async def read(self) -> KillSwitchState | None:
        """The recorded state, or None when there is no record at all.

        Raises StoreError when it cannot be read or the record is not exactly
        what Jarvis writes. What None means is decided by the caller
        (`jarvis.loop.killswitch.KillSwitch`), which knows the flip history.
        """
        ...

    async def write(self, state: KillSwitchState) -> None: ...

    async def release(self, state: KillSwitchState, record: Callable[[], Awaitable[None]]) -> None:
        """Run ``record`` (the release's event, committed), then write ``state``.

        A backend that can watch its record raises StoreError instead of
        writing when another flip landed in between, so an engage made from
        another terminal while this release was recorded is not undone by it.
        """
        ...

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

    async def read(self) -> KillSwitchState | None:
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
            except ValueError as exc:
                # SQLite keeps any text in a typed column; a time its type cannot
                # read raised bare, a traceback from `jarvis killswitch status`.
                raise StoreError(
                    f"the kill switch row in {masked(self._engine.url)} is damaged: {exc}"
                ) from exc
        if row is None:
            return None
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

    async def release(self, state: KillSwitchState, record: Callable[[], Awaitable[None]]) -> None:
        """Record, then write: the row is not watched across the event's own transaction."""
        await record()
        await self.write(state)

    async def aclose(self) -> None:
        """Nothing to release: the engine belongs to whoever passed it in."""

    def _error(self, verb: str, exc: BaseException) -> StoreError:
        return StoreError(
            f"cannot {verb} the kill switch in {masked(self._engine.url)}: {describe(exc)}"
        )
