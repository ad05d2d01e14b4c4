"""Customer activity from a usage table: each request counted once, in its week, incrementally."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from jarvis.actuators.customers.activity import UsageActivity, week_start
from jarvis.store.usage import llm_usage, record_usage_async

pytestmark = pytest.mark.anyio

MONDAY = datetime(2026, 11, 2, tzinfo=UTC)
"""A Monday: weeks start here."""
DAY = timedelta(days=1)
LAG = timedelta(seconds=5)


@pytest.fixture
async def engine(tmp_path: object) -> AsyncIterator[AsyncEngine]:
    made = create_async_engine(f"sqlite+aiosqlite:///{tmp_path}/usage.db")
    async with made.begin() as connection:
        await connection.run_sync(llm_usage.create, checkfirst=True)
    yield made
    await made.dispose()


async def _use(engine: AsyncEngine, customer: str, at: datetime) -> None:
    await record_usage_async(
        engine,
        route="chat",
        model="m",
        input_tokens=1,
        output_tokens=1,
        cost_usd=0.0,
        latency_ms=1.0,
        success=True,
        at=at,
        customer_id=customer,
    )


def test_weeks_start_on_monday_midnight_utc() -> None:
    """Any moment of a week maps to its Monday 00:00 UTC."""
    assert week_start(MONDAY + 6 * DAY + timedelta(hours=23)) == MONDAY
    assert week_start(MONDAY) == MONDAY
    assert week_start(MONDAY - timedelta(seconds=1)) == MONDAY - 7 * DAY


async def test_the_first_read_counts_the_complete_weeks_by_customer(engine: AsyncEngine) -> None:
    """Requests land in their week, oldest first; the last request is the last activity."""
    now = MONDAY + 2 * DAY
    for days_back, count in ((23, 3), (16, 2), (9, 1)):
        for _ in range(count):
            await _use(engine, "a", MONDAY - days_back * DAY)
    await _use(engine, "a", now - DAY)  # this week: not complete, not in the counts
    await _use(engine, "b", MONDAY - 40 * DAY)  # before the window
    activity = UsageActivity(engine, weeks=4, lag=LAG)
    seen, _ = await activity.read(now)
    assert seen == {"a"}
    assert activity.weekly("a") == (3, 2, 1, 0)
    assert activity.last_active("a") == now - DAY
    assert activity.last_active("b") is None


async def test_later_reads_count_only_new_requests_and_say_who(engine: AsyncEngine) -> None:
    """A request is counted once, by the first read whose window (less the lag) holds it."""
    now = MONDAY + DAY
    activity = UsageActivity(engine, weeks=2, lag=LAG)
    await activity.read(now)
    await _use(engine, "a", now + timedelta(seconds=10))
    seen, _ = await activity.read(now + timedelta(seconds=12))  # still inside the lag
    assert seen == set()
    seen, _ = await activity.read(now + timedelta(seconds=30))
    assert seen == {"a"}
    seen, _ = await activity.read(now + timedelta(seconds=60))
    assert seen == set()
    assert activity.last_active("a") == now + timedelta(seconds=10)


async def test_a_new_week_shifts_every_customer_s_counts(engine: AsyncEngine) -> None:
    """At Monday 00:00 the week just ended joins the counts and the read says so."""
    now = MONDAY + 6 * DAY
    await _use(engine, "a", now)
    activity = UsageActivity(engine, weeks=2, lag=LAG)
    _, rolled = await activity.read(now + DAY / 2)
    assert not rolled
    assert activity.weekly("a") == (0, 0)
    _, rolled = await activity.read(MONDAY + 7 * DAY + DAY / 2)
    assert rolled
    assert activity.weekly("a") == (0, 1)


async def test_another_table_and_its_columns_can_be_mapped(engine: AsyncEngine) -> None:
    """The product's own request log, under its own names."""
    async with engine.begin() as connection:
        await connection.execute(text("CREATE TABLE requests (account TEXT, happened TIMESTAMP)"))
        await connection.execute(
            text("INSERT INTO requests VALUES ('acct-9', :at)"),
            {"at": (MONDAY - DAY).replace(tzinfo=None)},
        )
    activity = UsageActivity(
        engine, table="requests", customer_column="account", time_column="happened", lag=LAG
    )
    seen, _ = await activity.read(MONDAY + DAY)
    assert seen == {"acct-9"}
    assert activity.last_active("acct-9") == MONDAY - DAY


async def test_a_name_that_is_not_an_identifier_is_refused(engine: AsyncEngine) -> None:
    """No SQL gets in through the mapping."""
    with pytest.raises(ValueError, match="identifier"):
        UsageActivity(engine, table="usage; DROP TABLE customers")
