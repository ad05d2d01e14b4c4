"""The llm_usage actuator and the usage recorders, on migrated PostgreSQL and SQLite."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from jarvis.actuators.base import ActuatorError
from jarvis.actuators.llm.usage import LlmUsageActuator
from jarvis.config.cost import CostSettings
from jarvis.loop.clock import VirtualClock
from jarvis.model import ModelSpend, ResourceRef, month_bounds
from jarvis.routing import record_usage, record_usage_async
from jarvis.store.migrate import upgrade
from tests.cost.builders import NOW

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["postgresql", "sqlite"])
def database_url(request: pytest.FixtureRequest) -> str:
    """A fresh PostgreSQL database, then a fresh SQLite file."""
    url: str = request.getfixturevalue("pg_url" if request.param == "postgresql" else "sqlite_url")
    return url


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on a database migrated to head, so llm_usage exists."""
    url = database_url
    await upgrade(url)
    engine = create_async_engine(url)
    try:
        yield engine
    finally:
        await engine.dispose()


async def add(
    engine: AsyncEngine,
    at: datetime,
    model: str,
    cost: float,
    *,
    route: str = "chat",
    success: bool = True,
    latency_ms: float = 500.0,
) -> None:
    await record_usage_async(
        engine,
        route=route,
        model=model,
        input_tokens=400,
        output_tokens=600,
        cost_usd=cost,
        latency_ms=latency_ms,
        success=success,
        at=at,
    )


def actuator(engine: AsyncEngine, now: datetime = NOW) -> LlmUsageActuator:
    return LlmUsageActuator.from_settings(CostSettings(), clock=VirtualClock(now), engine=engine)


async def test_migration_0002_matches_the_table_definition(engine: AsyncEngine) -> None:
    """Alembic finds no difference between the migrated llm_usage and jarvis.store.usage."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy.engine import Connection

    from jarvis.store.usage import llm_usage

    def diff(connection: Connection) -> list[object]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        changes = compare_metadata(context, llm_usage.metadata)
        return [c for c in changes if "llm_usage" in repr(c)]

    async with engine.connect() as connection:
        assert await connection.run_sync(diff) == []
        assert (
            await connection.run_sync(
                lambda c: MigrationContext.configure(c).get_current_revision()
            )
            is not None
        )


async def test_month_to_date_spend_per_model_and_route(engine: AsyncEngine) -> None:
    """The seed's spend ($300 gpt-4o, $100 gemini, $50 claude) is summed per model and route."""
    day = timedelta(days=1)
    for at in (NOW - 10 * day, NOW - 2 * day, NOW - timedelta(hours=1)):
        await add(engine, at, "gpt-4o", 100.0)
    await add(engine, NOW - 3 * day, "gemini", 100.0, route="code")
    await add(engine, NOW - 3 * day, "claude", 50.0)
    # Last month's spend does not count toward this month's budget.
    await add(engine, datetime(2025, 5, 31, 23, 59, tzinfo=UTC), "gpt-4o", 1000.0)

    (state,) = await actuator(engine).observe()

    assert state.ref == ResourceRef("cost", "llm", "cost")
    assert state.metrics["month_to_date_usd"] == pytest.approx(450.0)
    assert state.metrics["requests_month_to_date"] == 5
    start, end = month_bounds(NOW)
    fraction = (NOW - start) / (end - start)
    assert state.metrics["forecast_month_end_usd"] == pytest.approx(450.0 / fraction, rel=1e-6)
    assert state.record_attributes()["month"] == "2025-06"
    assert state.record_attributes()["by_model"] == {
        "claude": {"cost_usd": 50.0, "requests": 1},
        "gemini": {"cost_usd": 100.0, "requests": 1},
        "gpt-4o": {"cost_usd": 300.0, "requests": 3},
    }
    chat = state.record_attributes()["by_route"]["chat"]
    assert chat["cost_usd"] == pytest.approx(350.0)
    assert chat["requests"] == 4
    assert chat["input_tokens"] == 1600
    assert chat["output_tokens"] == 2400
    assert chat["by_model"] == {"gpt-4o": 300.0, "claude": 50.0}
    usage = state.llm_usage
    assert usage is not None and usage.month == "2025-06"
    assert usage.by_model["gpt-4o"] == ModelSpend(300.0, 3)
    assert (usage.by_route["chat"].requests, usage.by_route["chat"].input_tokens) == (4, 1600)


async def test_performance_covers_only_the_window(engine: AsyncEngine) -> None:
    """Success rate, mean latency and cost per route and model cover the last N days only."""
    day = timedelta(days=1)
    await add(engine, NOW - 1 * day, "claude", 1.0, route="code", latency_ms=1000)
    await add(engine, NOW - 2 * day, "claude", 1.0, route="code", latency_ms=2000, success=False)
    await add(engine, NOW - 8 * day, "claude", 5.0, route="code", latency_ms=9000, success=False)

    (state,) = await actuator(engine).observe()

    assert state.record_attributes()["window_days"] == 7
    code = state.record_attributes()["performance"]["code"]["claude"]
    assert code["requests"] == 2
    assert code["success_rate"] == 0.5
    assert code["mean_latency_ms"] == pytest.approx(1500.0)
    assert code["cost_usd"] == pytest.approx(2.0)


PRICES = {
    "gpt-4o": {"input_per_1k": 0.0025, "output_per_1k": 0.01},
    "claude-3-5-haiku": {"input_per_1k": 0.0008, "output_per_1k": 0.004},
}


def priced_actuator(engine: AsyncEngine) -> LlmUsageActuator:
    settings = CostSettings.model_validate({"prices": PRICES})
    return LlmUsageActuator.from_settings(settings, clock=VirtualClock(NOW), engine=engine)


async def test_a_priced_model_recorded_under_another_spelling_counts_as_that_model(
    engine: AsyncEngine,
) -> None:
    """Case, surrounding spaces, a provider prefix and a dated snapshot still name the
    priced model: its spend and its performance are one record, not several strangers."""
    hour = timedelta(hours=1)
    for model in ("gpt-4o", "openai/gpt-4o", " GPT-4o-2024-08-06 "):
        await add(engine, NOW - hour, model, 1.0)
    await add(engine, NOW - hour, "anthropic/claude-3-5-haiku-20241022", 0.5, success=False)

    (state,) = await priced_actuator(engine).observe()

    usage = state.llm_usage
    assert usage is not None
    assert usage.by_model == {
        "claude-3-5-haiku": ModelSpend(0.5, 1),
        "gpt-4o": ModelSpend(3.0, 3),
    }
    assert usage.by_route["chat"].by_model == {"gpt-4o": 3.0, "claude-3-5-haiku": 0.5}
    assert {m: p.requests for m, p in usage.performance["chat"].items()} == {
        "gpt-4o": 3,
        "claude-3-5-haiku": 1,
    }
    assert usage.unpriced == {}


async def test_a_model_matching_no_price_is_reported_and_not_free(engine: AsyncEngine) -> None:
    """Usage under a model no price matches (a near name is not folded in) is named in
    the facet; a request it recorded at $0 counts at the priciest configured price for
    its tokens, and one with a recorded cost counts at that cost."""
    hour = timedelta(hours=1)
    await add(engine, NOW - hour, "gpt-4o", 1.0)
    await add(engine, NOW - hour, "gpt-5", 0.0)  # 400 in, 600 out: $0.007 at gpt-4o's price
    await add(engine, NOW - hour, "gpt-4o-mini", 0.002)

    (state,) = await priced_actuator(engine).observe()

    usage = state.llm_usage
    assert usage is not None
    assert usage.month_to_date_usd == pytest.approx(1.009)
    assert usage.by_model["gpt-5"] == ModelSpend(0.007, 1)
    assert usage.unpriced == {
        "gpt-5": ModelSpend(0.007, 1),
        "gpt-4o-mini": ModelSpend(0.002, 1),
    }
    assert state.record_attributes()["unpriced"] == {
        "gpt-4o-mini": {"cost_usd": 0.002, "requests": 1},
        "gpt-5": {"cost_usd": 0.007, "requests": 1},
    }


async def test_an_empty_table_is_zero_spend(engine: AsyncEngine) -> None:
    """With no usage recorded the spend is zero, not missing."""
    usage = actuator(engine)
    (state,) = await usage.observe()
    assert state.metrics["month_to_date_usd"] == 0.0
    assert state.record_attributes()["by_route"] == {}
    assert usage.provider == "cost"


async def test_a_missing_table_is_an_actuator_error(sqlite_url: str) -> None:
    """An unmigrated database makes observe raise ActuatorError naming the problem."""
    engine = create_async_engine(sqlite_url)
    try:
        with pytest.raises(ActuatorError, match="llm_usage"):
            await actuator(engine).observe()
    finally:
        await engine.dispose()


@pytest.mark.parametrize(
    ("column", "value"),
    [("cost_usd", "NaN"), ("latency_ms", "NaN"), ("latency_ms", "Infinity")],
)
async def test_a_number_that_is_not_finite_in_llm_usage_is_an_actuator_error(
    pg_url: str, column: str, value: str
) -> None:
    """A NaN or infinite cost or latency another client wrote fails observe, naming where it is.

    record_usage refuses them, but PostgreSQL stores them for any other writer;
    summed, one NaN cost made the month's spend NaN, which no budget stage is
    reached by, so traffic was never shifted however much was spent.
    """
    await upgrade(pg_url)
    engine = create_async_engine(pg_url)
    try:
        await add(engine, NOW - timedelta(hours=2), "gpt-4o", 100.0)
        numbers = {"cost_usd": "1.0", "latency_ms": "500.0", column: value}
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO llm_usage (time, route, model, input_tokens, output_tokens,"
                    " cost_usd, latency_ms, success)"
                    " VALUES (:at, 'chat', 'gpt-4o', 400, 600, :cost, :latency, true)"
                ),
                {
                    "at": NOW - timedelta(hours=1),
                    "cost": Decimal(numbers["cost_usd"]),
                    "latency": float(numbers["latency_ms"]),
                },
            )
        with pytest.raises(ActuatorError) as raised:
            await actuator(engine).observe()
        message = str(raised.value)
        assert "llm_usage" in message
        assert column in message
        assert "'chat'" in message
        assert "'gpt-4o'" in message
    finally:
        await engine.dispose()


async def test_the_usage_reader_is_a_sensor_that_cannot_be_routed_an_action(
    engine: AsyncEngine,
) -> None:
    """The usage reader only observes: it has no apply, so no action is ever routed to it."""
    from jarvis.actuators.base import Actuator, route_table

    reader = actuator(engine)
    assert not isinstance(reader, Actuator)
    assert route_table([reader]) == {}


async def test_usage_database_url_gives_the_actuator_its_own_engine(
    sqlite_url: str,
) -> None:
    """With cost.usage_database_url set the actuator reads that database and closes it."""
    await upgrade(sqlite_url)
    usage = LlmUsageActuator.from_settings(
        CostSettings(usage_database_url=sqlite_url), clock=VirtualClock(NOW)
    )
    try:
        (state,) = await usage.observe()
        assert state.metrics["month_to_date_usd"] == 0.0
    finally:
        await usage.aclose()


async def test_sync_record_usage_appends_through_a_dsn(sqlite_url: str, tmp_path: Path) -> None:
    """A synchronous application records usage with a plain DSN, and Jarvis reads it back."""
    await upgrade(sqlite_url)
    dsn = f"sqlite:///{tmp_path}/jarvis.db"
    record_usage(
        dsn,
        route="chat",
        model="gemini",
        input_tokens=10,
        output_tokens=20,
        cost_usd=0.25,
        latency_ms=300,
        success=True,
        at=NOW - timedelta(minutes=5),
    )
    engine = create_async_engine(sqlite_url)
    try:
        (state,) = await actuator(engine).observe()
    finally:
        await engine.dispose()
    assert state.record_attributes()["by_model"] == {"gemini": {"cost_usd": 0.25, "requests": 1}}


_VALID: dict[str, Any] = {
    "route": "chat",
    "model": "m",
    "input_tokens": 1,
    "output_tokens": 1,
    "cost_usd": 0.1,
    "latency_ms": 1,
    "success": True,
}
"""One valid request; each refusal below changes one field of it."""


def _record(**changes: Any) -> None:
    """`record_usage` of `_VALID` with ``changes``, through a DSN a refusal never opens."""
    record_usage("sqlite://", **{**_VALID, **changes})


def test_record_usage_refuses_naive_times_and_negative_numbers() -> None:
    """Rows are validated before any connection is made."""
    with pytest.raises(ValueError, match="timezone"):
        _record(at=datetime(2025, 6, 1))  # noqa: DTZ001 - the naive time under test
    with pytest.raises(ValueError, match="negative"):
        _record(input_tokens=-1)


@pytest.mark.parametrize(
    ("cost", "latency", "field"),
    [
        (math.nan, 1.0, "cost_usd"),
        (math.inf, 1.0, "cost_usd"),
        (0.1, math.nan, "latency_ms"),
        (0.1, math.inf, "latency_ms"),
    ],
)
def test_record_usage_refuses_a_cost_or_latency_that_is_not_a_number(
    cost: float, latency: float, field: str
) -> None:
    """NaN passed the negative check, and PostgreSQL's numeric column takes it: one such
    row made the month's SUM(cost_usd) NaN, and no budget stage can be reached from NaN
    (every comparison with it is false), so the cost policy's shifts and alerts stopped
    for the rest of the month. Refused before any connection, with the field named."""
    with pytest.raises(ValueError, match=f"{field} must be a finite number"):
        _record(cost_usd=cost, latency_ms=latency)
