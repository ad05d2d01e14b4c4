"""The revenue ledger and keeper on SQLite and PostgreSQL: stored days against plain SQL, gauges."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import anyio
import pytest
from sqlalchemy import text, update

from jarvis.app import build_revenue_keeper
from jarvis.config import load_settings
from jarvis.loop.clock import VirtualClock
from jarvis.model import Movement
from jarvis.store import EventStore, StoreError
from jarvis.store.customers import customers
from jarvis.store.migrate import upgrade
from jarvis.store.revenue import RevenueLedger
from jarvis.telemetry.metrics import Metrics
from tests.conftest import create_pg_database, drop_pg_database

pytestmark = pytest.mark.anyio

PLANS: dict[str, Any] = {"starter": 19, "pro": 49, "team": {"usd": 1200, "interval": "year"}}
START = datetime(2026, 3, 10, 9, tzinfo=UTC)
# The same MRR, computed by the database from the same rows: the oracle.
PLAIN_MRR = (
    "SELECT coalesce(sum(CASE plan WHEN 'starter' THEN 19.0 WHEN 'pro' THEN 49.0 "
    "WHEN 'team' THEN 100.0 ELSE 0 END), 0) FROM customers "
    "WHERE subscription_status IN ('active', 'past_due')"
)


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, sqlite_url: str) -> AsyncIterator[EventStore]:
    url = sqlite_url
    if request.param == "postgres":
        url = await create_pg_database()
    await upgrade(url)
    opened = await EventStore.connect(url)
    try:
        yield opened
    finally:
        await opened.aclose()
        if request.param == "postgres":
            await drop_pg_database(url)


async def put(store: EventStore, cid: str, plan: str, status: str | None, now: datetime) -> None:
    row = {"plan": plan, "subscription_status": status, "updated_at": now}
    async with store.engine.begin() as connection:
        done = await connection.execute(update(customers).where(customers.c.id == cid).values(row))
        if done.rowcount == 0:
            await connection.execute(
                customers.insert().values(id=cid, email=f"{cid}@c.test", signed_up_at=now, **row)
            )


async def plain(store: EventStore, sql: str) -> Any:
    async with store.engine.connect() as connection:
        return (await connection.execute(text(sql))).scalar_one()


def keeper_for(store: EventStore, clock: VirtualClock, metrics: Metrics) -> Any:
    settings = load_settings(None, customers={"enabled": True, "plans": PLANS})
    keeper = build_revenue_keeper(settings, store, clock, metrics)
    assert keeper is not None
    return keeper


async def test_settled_days_match_plain_sql_and_set_the_gauges(store: EventStore) -> None:
    """Day one: three sign-ups; day two: upgrade, downgrade, cancel, a new one, a trial."""
    clock, metrics = VirtualClock(START), Metrics()
    keeper = keeper_for(store, clock, metrics)
    await put(store, "a", "starter", "active", START)
    await put(store, "b", "team", "active", START)
    await put(store, "c", "pro", "active", START)
    await put(store, "f", "free", None, START)
    first = await keeper.check()
    assert first.mrr_usd == pytest.approx(float(await plain(store, PLAIN_MRR)))
    assert first.moved == {Movement.NEW: pytest.approx(168.0)}

    clock.advance(86_400)
    later = clock.now()
    await put(store, "a", "pro", "active", later)
    await put(store, "b", "pro", "active", later)
    await put(store, "c", "pro", "canceled", later)
    await put(store, "d", "starter", "past_due", later)
    await put(store, "e", "team", "trialing", later)
    second = await keeper.check()
    again = await keeper.check()  # settling the same day twice changes nothing
    assert second == again
    assert second.mrr_usd == pytest.approx(float(await plain(store, PLAIN_MRR)))

    stored = await keeper.ledger.days(date(2026, 3, 1), date(2026, 3, 31))
    assert [d.day for d in stored] == [date(2026, 3, 10), date(2026, 3, 11)]
    day = stored[1]
    assert day.moved == {
        Movement.NEW: 19.0,
        Movement.EXPANSION: 30.0,
        Movement.CONTRACTION: pytest.approx(51.0),
        Movement.CHURNED: 49.0,
    }
    assert day.mrr_usd == pytest.approx(stored[0].mrr_usd + day.net_usd)
    async with store.engine.connect() as connection:
        grouped = await connection.execute(
            text("SELECT subscription_status, count(*) FROM customers GROUP BY 1")
        )
        by_status = {s or "none": n for s, n in grouped.all()}
    assert day.customers == by_status
    assert day.paying == await plain(
        store, "SELECT count(*) FROM customers WHERE subscription_status IN ('active','past_due')"
    )

    sample = metrics.registry.get_sample_value
    assert sample("jarvis_mrr_usd") == pytest.approx(day.mrr_usd)
    assert sample("jarvis_mrr_movement_usd", {"kind": "churned"}) == 49.0
    assert sample("jarvis_customers", {"status": "canceled"}) == 1
    assert sample("jarvis_customers", {"status": "none"}) == 1


async def test_a_past_day_cannot_be_settled_again(store: EventStore) -> None:
    """The customers table holds the present only: yesterday's row stays as it was settled."""
    clock = VirtualClock(START + timedelta(days=1))
    keeper = keeper_for(store, clock, Metrics())
    await put(store, "a", "pro", "active", START)
    await keeper.check()
    with pytest.raises(StoreError, match="cannot be settled"):
        await keeper.ledger.settle(date(2026, 3, 10), keeper.prices, clock.now())


async def test_no_keeper_without_prices_or_on_the_memory_store(store: EventStore) -> None:
    """Revenue needs plan prices and a SQL store; otherwise nothing runs."""
    clock, metrics = VirtualClock(START), Metrics()
    no_plans = load_settings(None, customers={"enabled": True})
    assert build_revenue_keeper(no_plans, store, clock, metrics) is None
    memory = await EventStore.in_memory()
    with_plans = load_settings(None, customers={"enabled": True, "plans": PLANS})
    assert build_revenue_keeper(with_plans, memory, clock, metrics) is None


async def test_the_daemon_starts_the_keeper_beside_the_scheduler(sqlite_url: str) -> None:
    """What `jarvis run` starts beside the loop settles today and sets the gauge."""
    from jarvis.app import build_app
    from jarvis.cli.daemon import _start_beside

    settings = load_settings(
        None, database_url=sqlite_url, customers={"enabled": True, "plans": PLANS}
    )
    clock = VirtualClock(START)
    app = await build_app(settings, clock=clock)
    try:
        await put(app.store, "a", "pro", "active", START)
        with anyio.fail_after(60):
            async with anyio.create_task_group() as group:
                _start_beside(group, settings, app, None, None)
                for _ in itertools.count():  # polled: the keeper has no event to wait on
                    if app.metrics.registry.get_sample_value("jarvis_mrr_usd") == 49.0:
                        break
                    await anyio.sleep(0.05)
                group.cancel_scope.cancel()
        ledger = RevenueLedger(app.store.engine)
        assert [d.mrr_usd for d in await ledger.days(START.date(), START.date())] == [49.0]
    finally:
        await app.aclose()
