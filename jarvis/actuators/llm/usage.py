"""The LLM usage reader: month-to-date spend and per-route model performance.

An observe-only actuator built by the composition root from `CostSettings`
and an async SQLAlchemy engine on the database that holds ``llm_usage``
(Jarvis's own by default). Each tick it runs two aggregate queries — plain
SQL, because actuators may not import the store that defines the table — and
publishes one resource, ``cost://llm`` (kind ``cost``), that the cost policy
reads. Months are UTC calendar months.

Metrics: ``month_to_date_usd``, ``forecast_month_end_usd`` (month to date
extrapolated linearly over the time elapsed, at least an hour),
``requests_month_to_date``.
Attributes:
- ``month`` ("YYYY-MM"), ``window_days``;
- ``by_model``: model → {``cost_usd``, ``requests``} this month;
- ``by_route``: route → {``cost_usd``, ``requests``, ``input_tokens``,
  ``output_tokens``, ``by_model``: model → cost_usd} this month;
- ``performance``: route → model → {``requests``, ``success_rate``,
  ``mean_latency_ms``, ``cost_usd``, ``input_tokens``, ``output_tokens``}
  over the last ``window_days``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import DateTime, bindparam, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from jarvis.actuators.base import ActuatorError
from jarvis.config.cost import CostSettings
from jarvis.model import (
    JSON,
    Action,
    Clock,
    ErrorKind,
    Health,
    Outcome,
    ResourceRef,
    ResourceState,
)

REF = ResourceRef("cost", "llm", "cost")

_TIME = DateTime(timezone=True)

_MONTH_SQL = text(
    "SELECT route, model, COUNT(*), SUM(cost_usd), SUM(input_tokens), SUM(output_tokens) "
    'FROM llm_usage WHERE "time" >= :start AND "time" < :end GROUP BY route, model'
).bindparams(bindparam("start", type_=_TIME), bindparam("end", type_=_TIME))

_WINDOW_SQL = text(
    "SELECT route, model, COUNT(*), SUM(CASE WHEN success THEN 1 ELSE 0 END), "
    "AVG(latency_ms), SUM(cost_usd), SUM(input_tokens), SUM(output_tokens) "
    'FROM llm_usage WHERE "time" >= :start AND "time" <= :end GROUP BY route, model'
).bindparams(bindparam("start", type_=_TIME), bindparam("end", type_=_TIME))


def month_bounds(now: datetime) -> tuple[datetime, datetime]:
    """The UTC calendar month containing ``now``: [start, end)."""
    utc = now.astimezone(UTC)
    start = datetime(utc.year, utc.month, 1, tzinfo=UTC)
    end = datetime(utc.year + utc.month // 12, utc.month % 12 + 1, 1, tzinfo=UTC)
    return start, end


class LlmUsageActuator:
    """Publishes ``cost://llm`` from the ``llm_usage`` table; owns no action kinds."""

    def __init__(
        self, engine: AsyncEngine, *, clock: Clock, window_days: int = 7, owns_engine: bool = False
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._window = timedelta(days=window_days)
        self._owns_engine = owns_engine

    @classmethod
    def from_settings(
        cls,
        section: CostSettings,
        *,
        clock: Clock,
        engine: AsyncEngine | None = None,
        database_url: str | None = None,
    ) -> LlmUsageActuator:
        """Read ``section.usage_database_url`` if set, else ``engine``, else ``database_url``.

        An engine made here from a URL is disposed by `aclose`; a given one is not.
        """
        window_days = section.performance.window_days
        url = section.usage_database_url
        if url is None and engine is None:
            url = database_url
        if url is not None:
            own = create_async_engine(url)
            return cls(own, clock=clock, window_days=window_days, owns_engine=True)
        if engine is None:
            raise ValueError("llm_usage needs an engine, a database URL or cost.usage_database_url")
        return cls(engine, clock=clock, window_days=window_days)

    @property
    def name(self) -> str:
        return "llm_usage"

    @property
    def provider(self) -> str:
        return "cost"

    @property
    def action_kinds(self) -> frozenset[str]:
        return frozenset()

    async def observe(self) -> Sequence[ResourceState]:
        now = self._clock.now().astimezone(UTC)
        start, end = month_bounds(now)
        try:
            async with self._engine.connect() as connection:
                month_rows = await connection.execute(_MONTH_SQL, {"start": start, "end": end})
                month = month_rows.all()
                window_rows = await connection.execute(
                    _WINDOW_SQL, {"start": now - self._window, "end": now}
                )
                window = window_rows.all()
        except SQLAlchemyError as exc:
            cause = getattr(exc, "orig", None) or exc
            raise ActuatorError(f"llm_usage: {type(cause).__name__}: {cause}") from exc
        return [self._state(now, start, end, month, window)]

    def _state(
        self,
        now: datetime,
        start: datetime,
        end: datetime,
        month: Sequence[Any],
        window: Sequence[Any],
    ) -> ResourceState:
        by_model: dict[str, dict[str, JSON]] = {}
        by_route: dict[str, dict[str, JSON]] = {}
        total = 0.0
        requests = 0
        for route, model, count, cost, input_tokens, output_tokens in month:
            cost_usd = float(cost or 0)
            total += cost_usd
            requests += int(count)
            m = by_model.setdefault(model, {"cost_usd": 0.0, "requests": 0})
            m["cost_usd"] += cost_usd
            m["requests"] += int(count)
            r = by_route.setdefault(
                route,
                {"cost_usd": 0.0, "requests": 0, "input_tokens": 0, "output_tokens": 0},
            )
            r["cost_usd"] += cost_usd
            r["requests"] += int(count)
            r["input_tokens"] += int(input_tokens or 0)
            r["output_tokens"] += int(output_tokens or 0)
            r.setdefault("by_model", {})[model] = round(cost_usd, 6)
        performance: dict[str, dict[str, JSON]] = {}
        for route, model, count, ok, latency, cost, input_tokens, output_tokens in window:
            performance.setdefault(route, {})[model] = {
                "requests": int(count),
                "success_rate": int(ok or 0) / int(count),
                "mean_latency_ms": float(latency or 0),
                "cost_usd": round(float(cost or 0), 6),
                "input_tokens": int(input_tokens or 0),
                "output_tokens": int(output_tokens or 0),
            }
        elapsed = max((now - start).total_seconds(), 3600.0)
        forecast = total * (end - start).total_seconds() / elapsed
        return ResourceState(
            ref=REF,
            health=Health.HEALTHY,
            observed_at=now,
            detail=f"LLM usage for {start:%Y-%m}",
            metrics={
                "month_to_date_usd": round(total, 6),
                "forecast_month_end_usd": round(forecast, 6),
                "requests_month_to_date": float(requests),
            },
            attributes={
                "month": f"{start:%Y-%m}",
                "window_days": self._window.days,
                "by_model": {k: _rounded(v) for k, v in sorted(by_model.items())},
                "by_route": {k: _rounded(v) for k, v in sorted(by_route.items())},
                "performance": performance,
            },
        )

    async def apply(self, action: Action, key: str) -> Outcome:  # noqa: ARG002 -- observe-only
        return Outcome.failure(
            f"{action.target} is observe-only", kind=ErrorKind.TERMINAL, code="ObserveOnly"
        )

    async def aclose(self) -> None:
        if self._owns_engine:
            await self._engine.dispose()


def _rounded(entry: dict[str, JSON]) -> dict[str, JSON]:
    return {k: round(v, 6) if isinstance(v, float) else v for k, v in entry.items()}
