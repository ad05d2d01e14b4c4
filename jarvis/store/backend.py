"""What the event store (`jarvis.store.events`) stands on and reports.

`EventBackend` is the protocol `SqlBackend` and `MemoryBackend` implement;
`FlushResult` is what one `EventStore.flush` did, which the loop's recorder
turns into metrics, logs and alerts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from jarvis.model import Event, EventKind, RetryState
from jarvis.store.errors import StoreError, describe, from_database, is_operational
from jarvis.store.place import Place

if TYPE_CHECKING:
    from jarvis.config.sections import RetentionSettings
    from jarvis.store.fence import Fences
    from jarvis.store.fleetcap import Cap

__all__ = ["EventBackend", "FlushResult", "database_failure"]


OUTCOME_KINDS = (EventKind.ACTION_APPLIED, EventKind.ACTION_FAILED, EventKind.ACTION_UNKNOWN)
"""The events that close an `action.started` intent with the same action id."""


class EventBackend(Protocol):
    """Where flushed events and the retry ledger live (`SqlBackend`, `MemoryBackend`).

    `write` is one transaction, refused whole when a fence fails or an intent would
    exceed one of ``caps`` (`jarvis.store.fleetcap`); a failure `is_operational` judges transient is
    spooled by the store. Reads raise StoreError when the backend is unreachable.
    """

    @property
    def url(self) -> str: ...

    @property
    def where(self) -> str:
        """The database in the words of every message (`jarvis.store.engine.location`)."""
        ...

    def unreachable(self, exc: BaseException) -> StoreError: ...

    async def write(
        self,
        pending: Sequence[Event],
        retries: Sequence[RetryState],
        fence: Fences | None = None,
        caps: Sequence[Cap] = (),
    ) -> None: ...

    async def events(
        self,
        *,
        limit: int,
        kinds: Sequence[str] | None,
        resource: str | None,
        after_id: int | None,
        since: datetime | None,
    ) -> list[Event]: ...

    async def events_by_time(
        self,
        *,
        kinds: Sequence[str] | None,
        resource: str | None,
        since: datetime | None,
        until: datetime | None,
        limit: int | None,
    ) -> list[Event]: ...

    async def open_intents(self) -> list[Event]: ...

    async def load_retries(self) -> dict[tuple[str, str], RetryState]: ...

    async def delete_retries(self, resource: str, recorded: Sequence[Event] = ()) -> int:
        """Delete ``resource``'s ledger rows and write ``recorded`` in one transaction:
        both or neither, so no reset goes unrecorded; the rows deleted."""
        ...

    async def count_events(self, kinds: Sequence[str] | None) -> int: ...

    async def prune(
        self, retention: RetentionSettings, *, now: datetime, keep_after: datetime, dry_run: bool
    ) -> dict[str, int]: ...

    async def ping(self) -> None: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True, slots=True)
class FlushResult:
    """What one flush did.

    ``written``: events sent to the database in the committed transaction
    (replayed ones included; any already present were skipped by their key).
    ``spooled``: events waiting in the spool file afterwards (0 on success).
    ``replayed``: how many of ``written`` came from the spool file.
    ``dead_letters``: spool lines that could not be read, set aside in the
    dead-letter file beside the spool since the last result said so.
    """

    written: int
    spooled: int
    replayed: int = 0
    dead_letters: int = 0


def database_failure(backend: EventBackend | Place, exc: BaseException) -> StoreError | None:
    """``exc`` as the store's one-line error naming ``backend``'s database, when it is the
    database's: an outage or a refusal as `EventBackend.unreachable` says it; any other
    error of the database or its driver (a table missing) its reason after the database
    (`EventBackend.where`). None for the store's own error and for anything else (a bug).

    `jarvis.store.EventStore.explain` says every failure this way, `jarvis plan`'s
    reader (`jarvis.store.readonly`) raises it for each query its database refused, and
    `jarvis.store.engine.database_outage` says it of another database at its `Place`.
    """
    if isinstance(exc, StoreError):
        return None
    if is_operational(exc):
        return backend.unreachable(exc)
    if from_database(exc):
        return StoreError(f"{backend.where}: {describe(exc)}")
    return None
