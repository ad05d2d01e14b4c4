"""The LLM usage reader: month-to-date spend and per-route model performance.

An observe-only actuator built by the composition root from `CostSettings`
and an async SQLAlchemy engine on the database that holds ``llm_usage``
(Jarvis's own by default). Each tick it runs two aggregate queries — plain
SQL, because actuators may not import the store that defines the table — and
publishes one resource, ``cost://llm`` (kind ``cost``), that the cost policy
reads. Months are UTC calendar months.

With ``[cost.prices]``, each row's model is first matched to the priced model
it names (`jarvis.actuators.llm.models`: ``openai/gpt-4o`` and
``gpt-4o-2024-08-06`` are ``gpt-4o``); a model matching none is listed in the
facet's ``unpriced``, its requests recorded at $0 counted at the priciest price.
The rows become the `LlmUsage` facet through `jarvis.actuators.llm.spend`,
the builder the simulated platform shares: month-to-date spend and requests,
the forecast (month to date extrapolated linearly over the time elapsed, at
least an hour), spend by model and by route this month, and per route and
model the record over the last ``window_days``. The same numbers are
``metrics`` ``month_to_date_usd``, ``forecast_month_end_usd`` and
``requests_month_to_date``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import DateTime, bindparam, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from jarvis.actuators.base import ActuatorError, Scope
from jarvis.actuators.llm.models import PriceList
from jarvis.actuators.llm.spend import REF, MonthRow, WindowRow, performance_of, usage_state
from jarvis.config.cost import CostSettings
from jarvis.model import (
    Clock,
    ModelSpend,
    ResourceState,
    month_bounds,
    month_key,
)
from jarvis.sqlengine import async_engine

__all__ = ["REF", "LlmUsageActuator"]

_TIME = DateTime(timezone=True)

# The last two sums are the tokens of requests recorded at $0: what an unpriced
# model's free requests are counted by (`jarvis.actuators.llm.models`).
_MONTH_SQL = text(
    "SELECT route, model, COUNT(*), SUM(cost_usd), SUM(input_tokens), SUM(output_tokens), "
    "SUM(CASE WHEN cost_usd = 0 THEN input_tokens ELSE 0 END), "
    "SUM(CASE WHEN cost_usd = 0 THEN output_tokens ELSE 0 END) "
    'FROM llm_usage WHERE "time" >= :start AND "time" < :end GROUP BY route, model'
).bindparams(bindparam("start", type_=_TIME), bindparam("end", type_=_TIME))

_WINDOW_SQL = text(
    "SELECT route, model, COUNT(*), SUM(CASE WHEN success THEN 1 ELSE 0 END), "
    "AVG(latency_ms), SUM(cost_usd), SUM(input_tokens), SUM(output_tokens) "
    'FROM llm_usage WHERE "time" >= :start AND "time" <= :end GROUP BY route, model'
).bindparams(bindparam("start", type_=_TIME), bindparam("end", type_=_TIME))


class LlmUsageActuator:
    """Publishes ``cost://llm`` from the ``llm_usage`` table; owns no action kinds."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        clock: Clock,
        window_days: int = 7,
        owns_engine: bool = False,
        prices: PriceList | None = None,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._window = timedelta(days=window_days)
        self._owns_engine = owns_engine
        self._prices = prices
        """``[cost.prices]`` to match recorded models to; None (no prices): names as recorded."""

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
        prices = (
            PriceList({m: (p.input_per_1k, p.output_per_1k) for m, p in section.prices.items()})
            if section.prices
            else None
        )
        url = section.usage_database_url
        if url is None and engine is None:
            url = database_url
        if url is not None:
            own = async_engine(url)
            return cls(own, clock=clock, window_days=window_days, owns_engine=True, prices=prices)
        if engine is None:
            raise ValueError("llm_usage needs an engine, a database URL or cost.usage_database_url")
        return cls(engine, clock=clock, window_days=window_days, prices=prices)

    @property
    def name(self) -> str:
        return "llm_usage"

    @property
    def provider(self) -> str:
        return "cost"

    async def observe(self, _scope: Scope | None = None) -> Sequence[ResourceState]:
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
        month_rows = [
            MonthRow(route, model, int(count), float(cost or 0), int(i or 0), int(o or 0))
            for route, model, count, cost, i, o, _, _ in month
        ]
        free = {(r, m): (int(fi or 0), int(fo or 0)) for r, m, *_, fi, fo in month}
        window_rows = [
            WindowRow(
                route,
                model,
                int(count),
                int(ok or 0) / int(count),
                float(latency or 0),
                float(cost or 0),
                int(i or 0),
                int(o or 0),
            )
            for route, model, count, ok, latency, cost, i, o in window
        ]
        _require_finite(month_rows, window_rows, self._window.days)
        unpriced: dict[str, ModelSpend] = {}
        if self._prices is not None:
            month_rows, unpriced = _priced_month(month_rows, free, self._prices)
            window_rows = _priced_window(window_rows, self._prices)
        return usage_state(
            month_rows,
            performance_of(window_rows),
            unpriced=unpriced,
            month=month_key(now),
            window_days=self._window.days,
            month_seconds=(end - start).total_seconds(),
            elapsed_seconds=(now - start).total_seconds(),
            observed_at=now,
        )

    async def aclose(self) -> None:
        if self._owns_engine:
            await self._engine.dispose()


def _require_finite(month: Sequence[MonthRow], window: Sequence[WindowRow], days: int) -> None:
    """Raise `ActuatorError` naming the first sum that is not a finite number.

    `record_usage` refuses NaN and infinite numbers, but PostgreSQL stores
    them for any other writer, and one summed into the month made its spend
    NaN: no budget stage is reached by NaN, so traffic would never be shifted
    however much was spent. Unknown spend is what the cost policy must see.
    """
    span = f"the last {days} days"
    sums = [(row.route, row.model, "cost_usd", row.cost_usd, "this month") for row in month]
    for w in window:
        sums.append((w.route, w.model, "latency_ms", w.mean_latency_ms, span))
        sums.append((w.route, w.model, "cost_usd", w.cost_usd, span))
    for route, model, column, value, over in sums:
        if not math.isfinite(value):
            raise ActuatorError(
                f"llm_usage: {column} of route {route!r}, model {model!r} over {over}"
                f" is {value}: a row holds a number that is not finite (written around"
                " record_usage, which refuses them); the spend is unknown until it is corrected"
            )


def _priced_month(
    rows: Sequence[MonthRow], free: Mapping[tuple[str, str], tuple[int, int]], prices: PriceList
) -> tuple[list[MonthRow], dict[str, ModelSpend]]:
    """The month's rows under the priced model each names, and the unpriced models' spend.

    Rows naming one priced model (``gpt-4o``, ``openai/gpt-4o``) become one. A row
    whose model matches no price keeps its name, and its requests recorded at $0
    (``free``: their input and output tokens) are counted at the priciest price.
    """
    merged: dict[tuple[str, str], MonthRow] = {}
    unpriced: dict[str, tuple[float, int]] = {}
    for row in rows:
        model = prices.match(row.model)
        cost = row.cost_usd
        if model is None:
            model = row.model
            cost += prices.priciest(*free.get((row.route, row.model), (0, 0)))
            spent, requests = unpriced.get(model, (0.0, 0))
            unpriced[model] = (spent + cost, requests + row.requests)
        before = merged.get((row.route, model))
        merged[row.route, model] = (
            MonthRow(row.route, model, row.requests, cost, row.input_tokens, row.output_tokens)
            if before is None
            else MonthRow(
                row.route,
                model,
                before.requests + row.requests,
                before.cost_usd + cost,
                before.input_tokens + row.input_tokens,
                before.output_tokens + row.output_tokens,
            )
        )
    spends = {m: ModelSpend(round(c, 6), n) for m, (c, n) in sorted(unpriced.items())}
    return list(merged.values()), spends


def _priced_window(rows: Sequence[WindowRow], prices: PriceList) -> list[WindowRow]:
    """The window's rows under the priced model each names; rates weighted by requests."""
    merged: dict[tuple[str, str], WindowRow] = {}
    for w in rows:
        model = prices.match(w.model) or w.model
        b = merged.get((w.route, model))
        if b is None:
            merged[w.route, model] = dataclasses.replace(w, model=model)
            continue
        n = b.requests + w.requests
        merged[w.route, model] = WindowRow(
            w.route,
            model,
            n,
            (b.success_rate * b.requests + w.success_rate * w.requests) / n,
            (b.mean_latency_ms * b.requests + w.mean_latency_ms * w.requests) / n,
            b.cost_usd + w.cost_usd,
            b.input_tokens + w.input_tokens,
            b.output_tokens + w.output_tokens,
        )
    return list(merged.values())
