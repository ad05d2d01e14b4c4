"""One simulated replica's connection to the shared in-memory database, which can be cut.

The replicas of a simulation (`jarvis.simulation.replicas`) share one
`MemoryBackend`, as real replicas share one PostgreSQL; each reaches it through
its own `ReplicaLink`, so a partition can take the database away from one
replica while the others still reach it. A cut link fails every call as an
unreachable database does (`ConnectionRefusedError`, which the store judges
operational); otherwise it passes each call through unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from jarvis.config.sections import RetentionSettings
from jarvis.model import Event, RetryState
from jarvis.store import MemoryBackend, StoreError
from jarvis.store.fence import Fences
from jarvis.store.fleetcap import Cap


class ReplicaLink:
    """An `EventBackend` for one replica: the shared backend, unless `cut`."""

    def __init__(self, backend: MemoryBackend, replica: str) -> None:
        self.backend = backend
        self.replica = replica
        self.cut = False

    @property
    def url(self) -> str:
        return self.backend.url

    @property
    def where(self) -> str:
        return self.backend.where

    def unreachable(self, exc: BaseException) -> StoreError:
        return self.backend.unreachable(exc)

    def _check(self) -> None:
        if self.cut:
            raise ConnectionRefusedError(f"{self.replica} is cut off from the database (simulated)")

    def _read_check(self) -> None:
        try:
            self._check()
        except ConnectionRefusedError as exc:
            raise self.unreachable(exc) from exc

    async def write(
        self,
        pending: Sequence[Event],
        retries: Sequence[RetryState],
        fence: Fences | None = None,
        caps: Sequence[Cap] = (),
    ) -> None:
        self._check()
        await self.backend.write(pending, retries, fence, caps)

    async def events(
        self,
        *,
        limit: int,
        kinds: Sequence[str] | None,
        resource: str | None,
        after_id: int | None,
        since: datetime | None,
    ) -> list[Event]:
        self._read_check()
        return await self.backend.events(
            limit=limit, kinds=kinds, resource=resource, after_id=after_id, since=since
        )

    async def events_by_time(
        self,
        *,
        kinds: Sequence[str] | None,
        resource: str | None,
        since: datetime | None,
        until: datetime | None,
        limit: int | None,
    ) -> list[Event]:
        self._read_check()
        return await self.backend.events_by_time(
            kinds=kinds, resource=resource, since=since, until=until, limit=limit
        )

    async def open_intents(self) -> list[Event]:
        self._read_check()
        return await self.backend.open_intents()

    async def load_retries(self) -> dict[tuple[str, str], RetryState]:
        self._read_check()
        return await self.backend.load_retries()

    async def delete_retries(self, resource: str, recorded: Sequence[Event] = ()) -> int:
        self._read_check()
        return await self.backend.delete_retries(resource, recorded)

    async def count_events(self, kinds: Sequence[str] | None) -> int:
        self._read_check()
        return await self.backend.count_events(kinds)

    async def prune(
        self, retention: RetentionSettings, *, now: datetime, keep_after: datetime, dry_run: bool
    ) -> dict[str, int]:
        self._read_check()
        return await self.backend.prune(retention, now=now, keep_after=keep_after, dry_run=dry_run)

    async def ping(self) -> None:
        self._read_check()
        await self.backend.ping()

    async def aclose(self) -> None:
        """The shared backend outlives every replica: nothing to close."""
