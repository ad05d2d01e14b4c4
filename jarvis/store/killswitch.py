"""Where the kill switch lives: a row in the event database, or a hash in Redis.

The safety guard reads the switch right before every action is applied, so
`read()` is a single round trip, and a switch that cannot be read raises
StoreError (the guard then blocks: fail-safe). The CLI and the admin API
`write()` an engage and `release()` a release, which writes only if no other
flip landed while the release was recorded. The app picks Redis when
``redis_url`` is configured, the database otherwise.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from sqlalchemy import Executable, RowMapping, and_, bindparam, false, select, text, type_coerce
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.types import NullType

from jarvis.model import KillSwitchState
from jarvis.store.engine import location, masked
from jarvis.store.errors import FlipOverrunError, StoreError, describe
from jarvis.store.tables import killswitch, upsert_into

__all__ = ["DbKillSwitch", "KillSwitchBackend"]

_FIELDS = ("engaged", "actor", "reason", "changed_at")
_SEEN = text("SELECT engaged, actor, reason, changed_at FROM killswitch WHERE id = 1")
"""The row as the driver returns it: no type reads it, so a damaged time is no error here."""


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

        A backend that can watch its record raises FlipOverrunError instead
        of writing when another flip landed in between, so an engage made from
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
        upsert = upsert_into(killswitch, engine.dialect.name)
        replace = {name: upsert.excluded[name] for name in _FIELDS}
        self._upsert = upsert.on_conflict_do_update(index_elements=[killswitch.c.id], set_=replace)
        # A release writes only over the row it saw before recording (each
        # column null-safe equal to the driver's own value, so no type
        # re-encodes it), or into no row if it saw none.
        unchanged = and_(
            *(
                type_coerce(killswitch.c[name], NullType()).is_not_distinct_from(
                    bindparam(f"seen_{name}")
                )
                for name in _FIELDS
            )
        )
        self._release_over = upsert.on_conflict_do_update(
            index_elements=[killswitch.c.id], set_=replace, where=unchanged
        )
        self._release_into_none = upsert.on_conflict_do_update(
            index_elements=[killswitch.c.id], set_=replace, where=false()
        )

    async def read(self) -> KillSwitchState | None:
        try:
            row = await self._fetch(self._query)
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
        await self._write(self._upsert, _values(state))

    async def release(self, state: KillSwitchState, record: Callable[[], Awaitable[None]]) -> None:
        """Read the row, ``record``, then write ``state`` only if the row is still as read.

        The event commits in a transaction of its own, so no lock spans it; an
        engage from another process committed in between was overwritten by
        this release, after that operator had been told the switch was engaged.
        """
        try:
            seen = await self._fetch(_SEEN)
        except StoreError as exc:
            raise StoreError(
                f"{exc}; the release is not recorded, the kill switch is left as it was"
            ) from exc
        await record()
        if seen is None:
            written = await self._write(self._release_into_none, _values(state))
        else:
            sees = {f"seen_{name}": seen[name] for name in _FIELDS}
            written = await self._write(self._release_over, {**_values(state), **sees})
        if written != 1:
            raise FlipOverrunError(masked(self._engine.url))

    async def _fetch(self, query: Executable) -> RowMapping | None:
        """The switch row through the reader; StoreError when the database does not answer."""
        retry = True
        while True:
            try:
                async with self._reader.connect() as connection:
                    return (await connection.execute(query)).mappings().first()
            except DBAPIError as exc:
                # A pooled connection from before a database restart: retry once, fresh.
                if retry and exc.connection_invalidated:
                    retry = False
                    continue
                raise self._error("read", exc) from exc
            except (SQLAlchemyError, OSError) as exc:
                raise self._error("read", exc) from exc

    async def _write(self, statement: Executable, values: dict[str, Any]) -> int:
        """Run ``statement`` in a transaction of its own; the rows it wrote."""
        try:
            async with self._engine.begin() as connection:
                return (await connection.execute(statement, values)).rowcount
        except (SQLAlchemyError, OSError) as exc:
            raise self._error("write", exc) from exc

    async def aclose(self) -> None:
        """Nothing to release: the engine belongs to whoever passed it in."""

    def _error(self, verb: str, exc: BaseException) -> StoreError:
        return StoreError(
            f"cannot {verb} the kill switch in {location(self._engine.url)}: {describe(exc)}"
        )


def _values(state: KillSwitchState) -> dict[str, Any]:
    return {
        "id": 1,
        "engaged": state.engaged,
        "actor": state.actor,
        "reason": state.reason,
        "changed_at": state.changed_at,
    }
