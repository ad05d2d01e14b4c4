"""Benchmark 11: 100,000 customers observed per tick, incrementally (issue 14).

Fills the ``customers`` table with N onboarded, active customers (nothing to
do) and ``llm_usage`` with ``--usage`` requests per customer over the last
four weeks, builds the app through the composition root with ``[customers]``
on (the customers sensor with its activity reader, the onboarding and churn
policies; nothing allowed), and times: the first ticks, which page through
every row (``read_batch`` rows each) and count four weeks of usage; then
steady ticks in which ``--changes`` customers are updated and ``--changes``
requests recorded between ticks, each reading only those rows. Reported: the
customers sensor's observe alone and the whole tick, median of ``--ticks``.
Target: the steady observe reads only the changed rows and the whole tick
stays well inside the default observe timeout (10 s).

With PostgreSQL, the same again with the customers in the product's own
database (``[customers.source]``, a table under other column names in a
database of its own): the source read copies the changed rows into Jarvis's
table before the sensor reads them.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import asyncpg
from common import save
from pg import fresh_database
from sqlalchemy import update

from jarvis.actuators.customers.sensor import CustomersActuator
from jarvis.app import build_app
from jarvis.config import load_settings
from jarvis.loop.clock import VirtualClock
from jarvis.store import EventStore
from jarvis.store.customers import customers
from jarvis.store.usage import llm_usage, usage_row
from jarvis.telemetry.logging import configure_logging

_BATCH = 10_000


async def _fill(
    url: str, count: int, clock: VirtualClock, usage: int, *, plan: str = "free"
) -> None:
    store = await EventStore.connect(url, auto_migrate=True)
    now = clock.now()
    try:
        async with store.engine.begin() as connection:
            batch = _BATCH
            for start in range(0, count, batch):
                rows = [
                    {
                        "id": f"c{n:07d}",
                        "email": f"c{n}@bench.test",
                        "plan": plan,
                        "signed_up_at": now,
                        "stripe_customer_id": f"cus_{n}",
                        "welcomed_at": now,
                        "marketing_opt_out": False,
                        "dashboard_access": True,
                        "last_active_at": now,
                        "updated_at": now,
                    }
                    for n in range(start, min(count, start + batch))
                ]
                await connection.execute(customers.insert(), rows)
        await _requests(store, count * usage, count, now, spread=timedelta(days=28))
    finally:
        await store.aclose()


async def _requests(
    store: EventStore, total: int, count: int, now: datetime, *, spread: timedelta
) -> None:
    """``total`` requests by customers spread over ``count``, stamped over ``spread`` before now."""
    async with store.engine.begin() as connection:
        for start in range(0, total, _BATCH):
            rows = [
                usage_row(
                    route="chat",
                    model="m",
                    input_tokens=1,
                    output_tokens=1,
                    cost_usd=0.0,
                    latency_ms=1.0,
                    success=True,
                    at=now - spread * ((n * 7919) % total) / total,
                    customer_id=f"c{(n * 104_729) % count:07d}",
                )
                for n in range(start, min(total, start + _BATCH))
            ]
            await connection.execute(llm_usage.insert(), rows)


async def _fill_product(url: str, table: str, count: int, now: datetime) -> None:
    """The product's own users table, under its own column names.

    Modified a second apart over the last day or so, as a table in use has been,
    not all at one instant: a bulk at the newest stamp is read a second time
    after it is first read (`ProductSource`), which would run into the steady ticks.
    """
    connection = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        await connection.execute(
            f"CREATE TABLE {table} (user_id text PRIMARY KEY, mail text NOT NULL, "
            "tier text, created timestamptz NOT NULL, last_seen timestamptz, "
            "modified timestamptz NOT NULL)"
        )
        await connection.execute(f"CREATE INDEX ON {table} (modified, user_id)")
        await connection.copy_records_to_table(
            table,
            records=[
                (f"c{n:07d}", f"c{n}@bench.test", "pro", now, now, now - timedelta(seconds=n))
                for n in range(count)
            ],
            columns=["user_id", "mail", "tier", "created", "last_seen", "modified"],
        )
    finally:
        await connection.close()


async def _change_product(url: str, table: str, ids: list[str], now: datetime) -> None:
    connection = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        await connection.execute(
            f"UPDATE {table} SET tier = CASE tier WHEN 'pro' THEN 'team' ELSE 'pro' END, "  # noqa: S608 - the bench's table
            "modified = $1 WHERE user_id = ANY($2)",
            now,
            ids,
        )
    finally:
        await connection.close()


async def _prepare(
    url: str, count: int, clock: VirtualClock, usage: int, *, product: str | None, table: str
) -> dict[str, Any]:
    """Fill Jarvis's tables, or the product's; the ``[customers]`` keys that read the latter."""
    if product is None:
        await _fill(url, count, clock, usage)
        return {}
    # A restart beside an existing copy: every customer already copied and onboarded,
    # so the first reads compare 100,000 rows and write none (the plans match: "pro").
    await _fill(url, count, clock, 0, plan="pro")
    await _fill_product(product, table, count, clock.now())
    columns = {
        "id": "user_id",
        "email": "mail",
        "plan": "tier",
        "signed_up_at": "created",
        "last_active_at": "last_seen",
        "updated_at": "modified",
    }
    return {"source": {"url": product, "table": table, "columns": columns}}


async def _measure(
    url: str, count: int, ticks: int, changes: int, usage: int, *, product: str | None = None
) -> dict[str, Any]:
    """Customers in Jarvis's table, or with ``product`` (a URL) in the product's own database."""
    clock = VirtualClock()
    table = "product_users"
    extra = await _prepare(url, count, clock, usage, product=product, table=table)
    clock.advance(60)
    with tempfile.TemporaryDirectory() as scratch:
        settings = load_settings(
            database_url=url,
            spool_path=Path(scratch) / "s.jsonl",
            simulated={"enabled": False},
            allowlist=[],
            customers={"enabled": True, **extra},
        )
        app = await build_app(settings, clock=clock, run_id="bench")
        try:
            sensor = next(a for a in app.actuators if isinstance(a, CustomersActuator))
            catching_up: list[float] = []
            first_rows = 0
            while not catching_up or sensor.catching_up:
                started = time.perf_counter()
                await app.reconciler.tick()
                catching_up.append(time.perf_counter() - started)
                first_rows += sensor.rows_read
                clock.advance(30)
            # Rows stamped by the last catching-up tick are read once more inside the lag.
            await app.reconciler.tick()
            observes: list[float] = []
            whole: list[float] = []
            rows_read: list[int] = []
            active: list[int] = []
            for tick in range(ticks):
                clock.advance(30)
                ids = [f"c{(tick * changes + k) % count:07d}" for k in range(changes)]
                if product is None:
                    async with app.store.engine.begin() as connection:
                        await connection.execute(
                            update(customers)
                            .where(customers.c.id.in_(ids))
                            .values(plan="pro" if tick % 2 == 0 else "free", updated_at=clock.now())
                        )
                    await _requests(app.store, changes, count, clock.now(), spread=timedelta(0))
                else:
                    await _change_product(product, table, ids, clock.now())
                clock.advance(settings.customers.lag_seconds + 1)
                observed = time.perf_counter()
                await sensor.observe()
                observes.append(time.perf_counter() - observed)
                rows_read.append(sensor.rows_read)
                active.append(sensor.active_seen)
                started = time.perf_counter()
                await app.reconciler.tick()
                whole.append(time.perf_counter() - started)
        finally:
            await app.aclose()
    return {
        "customers": count,
        "source": "product database" if product else "jarvis table",
        "usage_rows": 0 if product else count * usage,
        "changes_per_tick": changes,
        "first_ticks": len(catching_up),
        "first_tick_max_seconds": round(max(catching_up), 3),
        "first_rows_read": first_rows,
        "observe_median_seconds": round(statistics.median(observes), 4),
        "rows_read_median": statistics.median(rows_read),
        "active_seen_median": statistics.median(active),
        "tick_median_seconds": round(statistics.median(whole), 3),
    }


async def _on_postgres(count: int, ticks: int, changes: int, usage: int) -> dict[str, Any]:
    async with fresh_database() as url:
        return await _measure(url, count, ticks, changes, usage)


async def _from_product(count: int, ticks: int, changes: int) -> dict[str, Any]:
    async with fresh_database() as url, fresh_database("jarvis_bench_product") as product:
        return await _measure(url, count, ticks, changes, 0, product=product)


def run(argv: list[str]) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="bench/run.py customers")
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--ticks", type=int, default=5)
    parser.add_argument("--changes", type=int, default=100)
    parser.add_argument("--usage", type=int, default=2, help="requests per customer, 4 weeks")
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args(argv)
    configure_logging("error", "json", stream=sys.stderr)
    results: dict[str, Any] = {}
    shape = (args.customers, args.ticks, args.changes)
    with tempfile.TemporaryDirectory() as scratch:
        url = f"sqlite+aiosqlite:///{scratch}/bench.db"
        results["sqlite"] = anyio.run(_measure, url, *shape, args.usage)
    if not args.no_postgres:
        results["postgresql"] = anyio.run(_on_postgres, *shape, args.usage)
        results["postgresql, product database"] = anyio.run(_from_product, *shape)
    print(results, flush=True)
    summary = [
        {
            "benchmark": "11. customers",
            "measure": f"{r['customers']:,} customers ({r['source']}), {r['changes_per_tick']} "
            f"changed per tick, {backend}: steady observe / whole tick (median); first read",
            "target": "reads only the changed rows; tick < 10 s",
            "measured": f"{r['observe_median_seconds'] * 1000:.0f} ms reading "
            f"{r['rows_read_median']:g} rows / {r['tick_median_seconds']:.2f} s; "
            f"first read over {r['first_ticks']} ticks, "
            f"each <= {r['first_tick_max_seconds']:.1f} s "
            f"({r['first_rows_read']:,} rows)",
            "meets": r["rows_read_median"] <= 2 * r["changes_per_tick"]
            and r["tick_median_seconds"] < 10,
        }
        for backend, r in results.items()
    ]
    return save("customers", {**results, "summary": summary})


if __name__ == "__main__":
    run(sys.argv[1:])
