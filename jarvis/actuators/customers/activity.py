"""Customer activity from the product's usage table: last use and weekly request counts.

Read by the customers sensor (`jarvis.actuators.customers.sensor`) each
observe, so the `Customer` facet carries ``last_active_at`` and
``weekly_usage``, which the churn policy judges. By default the table is
``llm_usage`` (one row per request, its ``customer_id`` and ``time``); a
``[customers.activity]`` mapping names another table and its two columns.

Incremental, never a scan of the table: each read counts the rows in
``[since, until)``, grouped by customer in the database, and moves ``since``
to ``until``, so every row is counted once. ``until`` is the read's time less
``lag``: a request stamped within the lag may not be committed yet and is
counted by a later read; one committed later than that is never counted (not
handled). A read never crosses a week boundary (Monday 00:00 UTC), so each
count lands in its week. The first read counts the last ``weeks`` complete
weeks and the current one, one query per week.
"""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import DateTime, bindparam, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from jarvis.actuators.base import ActuatorError
from jarvis.actuators.customers.table import as_utc, bind_time

__all__ = ["IDENTIFIER", "UsageActivity", "week_start"]

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")
"""A table (optionally ``schema.table``) or column name the mapping may use."""

_WEEK = timedelta(days=7)
_MONDAY = datetime(2024, 1, 1, tzinfo=UTC)


def week_start(at: datetime) -> datetime:
    """The Monday 00:00 UTC that starts the week holding ``at``."""
    weeks = (at.astimezone(UTC) - _MONDAY) // _WEEK
    return _MONDAY + weeks * _WEEK


def quote(name: str) -> str:
    """A checked identifier, double-quoted part by part (case kept on PostgreSQL)."""
    if not IDENTIFIER.match(name):
        raise ValueError(f"not a plain SQL identifier: {name!r}")
    return ".".join(f'"{part}"' for part in name.split("."))


class UsageActivity:
    """Per-customer last activity and weekly counts, kept up to date from the usage table."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        table: str = "llm_usage",
        customer_column: str = "customer_id",
        time_column: str = "time",
        weeks: int = 4,
        lag: timedelta = timedelta(seconds=5),
    ) -> None:
        who, when = quote(customer_column), quote(time_column)
        self._query = text(
            f"SELECT {who}, COUNT(*), MAX({when}) FROM {quote(table)} "  # noqa: S608 - checked identifiers
            f"WHERE {when} >= :since AND {when} < :until AND {who} IS NOT NULL GROUP BY {who}"
        ).bindparams(
            bindparam("since", type_=DateTime(timezone=True)),
            bindparam("until", type_=DateTime(timezone=True)),
        )
        self._engine = engine
        self._weeks = weeks
        self._lag = lag
        self._since: datetime | None = None
        self._counts: dict[datetime, dict[str, int]] = defaultdict(dict)
        self._last: dict[str, datetime] = {}
        self._week: datetime | None = None
        """The current week at the last read: when it moves, every customer's counts shift."""

    async def read(self, now: datetime) -> tuple[set[str], bool]:
        """Count what happened since the last read: the customers seen, and whether a week ended."""
        until = now - self._lag
        since = self._since
        if since is None:
            since = week_start(until) - self._weeks * _WEEK
        seen: set[str] = set()
        while since < until:
            end = min(until, week_start(since) + _WEEK)
            week = self._counts[week_start(since)]
            for customer, count, last in await self._window(since, end):
                week[customer] = week.get(customer, 0) + count
                at = as_utc(last)
                if customer not in self._last or at > self._last[customer]:
                    self._last[customer] = at
                seen.add(customer)
            since = end
        self._since = since
        current = week_start(until)
        rolled = self._week is not None and current != self._week
        self._week = current
        oldest = current - self._weeks * _WEEK
        for start in [w for w in self._counts if w < oldest]:
            del self._counts[start]
        return seen, rolled

    def last_active(self, customer_id: str) -> datetime | None:
        return self._last.get(customer_id)

    def weekly(self, customer_id: str) -> tuple[int, ...]:
        """Requests in each of the last complete weeks, oldest first."""
        if self._week is None:
            return ()
        starts = [self._week - n * _WEEK for n in range(self._weeks, 0, -1)]
        return tuple(self._counts.get(start, {}).get(customer_id, 0) for start in starts)

    async def _window(self, since: datetime, until: datetime) -> list[Any]:
        params = {"since": bind_time(since, self._engine), "until": bind_time(until, self._engine)}
        try:
            async with self._engine.connect() as connection:
                result = await connection.execute(self._query, params)
                return [(str(r[0]), int(r[1]), r[2]) for r in result.all()]
        except SQLAlchemyError as exc:
            cause = getattr(exc, "orig", None) or exc
            raise ActuatorError(f"customer activity: {type(cause).__name__}: {cause}") from exc

    async def aclose(self) -> None:
        await self._engine.dispose()
