"""The notification outbox in memory, for the simulation (whose event store is in memory too).

It answers as `jarvis.store.outbox.Outbox` does (`tests/store/test_outbox_due.py` puts the
same history to both); its pending rows are kept apart, so that `due` reads those only.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from jarvis.store.outbox import (
    FAILED,
    PENDING,
    REVISION,
    SENT,
    NotificationRow,
    StaleStateError,
    revision_of,
)

__all__ = ["MemoryOutbox"]


class MemoryOutbox:
    """The outbox in memory, for the simulation (whose event store is in memory too)."""

    def __init__(self) -> None:
        self._state: dict[str, Any] = {}
        self._rows: dict[int, NotificationRow] = {}
        self._pending: dict[int, NotificationRow] = {}
        """The pending rows, by id: what `due` scans, not every row ever written."""
        self._keys: set[str] = set()

    async def load_state(self) -> dict[str, Any]:
        return dict(self._state)

    async def commit(
        self,
        state: dict[str, Any],
        new: Sequence[dict[str, Any]],
        now: datetime,
        revision: int | None = None,
    ) -> int:
        if revision is not None and revision_of(self._state.get(REVISION)) != revision:
            raise StaleStateError(revision)
        self._state.update(state)
        inserted = 0
        for row in new:
            if row["dedup_key"] in self._keys:
                continue
            self._keys.add(row["dedup_key"])
            row_id = len(self._rows) + 1
            self._rows[row_id] = self._pending[row_id] = NotificationRow(
                id=row_id,
                status=PENDING,
                attempts=0,
                next_attempt_at=now,
                last_error="",
                sent_at=None,
                **row,
            )
            inserted += 1
        return inserted

    async def due(self, now: datetime, limit: int = 50) -> list[NotificationRow]:
        if not self._pending:  # every round asks; nearly always nothing is pending
            return []
        due: list[NotificationRow] = []
        waiting: set[tuple[str, str]] = set()
        for row in sorted(self._pending.values(), key=lambda r: r.id):
            if (row.channel, row.incident) not in waiting and row.next_attempt_at <= now:
                due.append(row)
            waiting.add((row.channel, row.incident))
        return due[:limit]

    async def claim(
        self, now: datetime, until: datetime, skip: Collection[str] = ()
    ) -> NotificationRow | None:
        for row in await self.due(now, len(self._pending)):
            if row.channel not in skip:
                self._update(row.id, next_attempt_at=until)
                return row
        return None

    async def rows(self, status: str | None = None) -> list[NotificationRow]:
        return [r for r in self._rows.values() if status is None or r.status == status]

    async def mark_sent(self, row_id: int, attempts: int, now: datetime, error: str = "") -> None:
        self._update(row_id, status=SENT, attempts=attempts, sent_at=now, last_error=error)

    async def mark_retry(
        self,
        row_id: int,
        attempts: int,
        at: datetime,
        error: str,
        message: dict[str, Any] | None = None,
    ) -> None:
        changed = {} if message is None else {"message": message}
        self._update(row_id, attempts=attempts, next_attempt_at=at, last_error=error, **changed)

    async def mark_failed(self, row_id: int, attempts: int, error: str) -> None:
        self._update(row_id, status=FAILED, attempts=attempts, last_error=error)

    def _update(self, row_id: int, **values: Any) -> None:
        row = self._rows[row_id] = replace(self._rows[row_id], **values)
        if row.status == PENDING:
            self._pending[row_id] = row
        else:
            self._pending.pop(row_id, None)
