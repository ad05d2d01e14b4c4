"""Benchmark 11: 100,000 customers observed per tick, incrementally (issue 14).

Fills the ``customers`` table with N onboarded customers (nothing to do), builds
the app through the composition root with ``[customers]`` on (the customers
sensor and the onboarding policy; nothing allowed), and times: the first
ticks, which page through every row (``read_batch`` rows each); then steady
ticks in which ``--changes`` customers are updated between ticks, each
reading only those rows. Reported: the customers sensor's observe alone and
the whole tick, median of ``--ticks``. Target: the steady observe reads only
the changed rows and the whole tick stays well inside the default observe
timeout (10 s).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
from common import save
from pg import fresh_database
from sqlalchemy import update

from jarvis.actuators.customers.sensor import CustomersActuator
from jarvis.app import build_app
from jarvis.config import load_settings
from jarvis.loop.clock import VirtualClock
from jarvis.store import EventStore
from jarvis.store.customers import customers
from jarvis.telemetry.logging import configure_logging


async def _fill(url: str, count: int, clock: VirtualClock) -> None:
    store = await EventStore.connect(url, auto_migrate=True)
    now = clock.now()
    try:
        async with store.engine.begin() as connection:
            batch = 10_000
            for start in range(0, count, batch):
                rows = [
                    {
                        "id": f"c{n:07d}",
                        "email": f"c{n}@bench.test",
                        "plan": "free",
                        "signed_up_at": now,
                        "stripe_customer_id": f"cus_{n}",
                        "welcomed_at": now,
                        "marketing_opt_out": False,
                        "dashboard_access": True,
                        "updated_at": now,
                    }
                    for n in range(start, min(count, start + batch))
                ]
                await connection.execute(customers.insert(), rows)
    finally:
        await store.aclose()


async def _measure(url: str, count: int, ticks: int, changes: int) -> dict[str, Any]:
    clock = VirtualClock()
    await _fill(url, count, clock)
    clock.advance(60)
    with tempfile.TemporaryDirectory() as scratch:
        settings = load_settings(
            database_url=url,
            spool_path=Path(scratch) / "s.jsonl",
            simulated={"enabled": False},
            allowlist=[],
            customers={"enabled": True},
        )
        app = await build_app(settings, clock=clock, run_id="bench")
        try:
            sensor = next(a for a in app.actuators if isinstance(a, CustomersActuator))
            catching_up: list[float] = []
            first_rows = 0
            while not catching_up or sensor.rows_read == settings.customers.read_batch:
                started = time.perf_counter()
                await app.reconciler.tick()
                catching_up.append(time.perf_counter() - started)
                first_rows += sensor.rows_read
                clock.advance(30)
            observes: list[float] = []
            whole: list[float] = []
            rows_read: list[int] = []
            for tick in range(ticks):
                clock.advance(30)
                ids = [f"c{(tick * changes + k) % count:07d}" for k in range(changes)]
                async with app.store.engine.begin() as connection:
                    await connection.execute(
                        update(customers)
                        .where(customers.c.id.in_(ids))
                        .values(plan="pro" if tick % 2 == 0 else "free", updated_at=clock.now())
                    )
                clock.advance(settings.customers.lag_seconds + 1)
                observed = time.perf_counter()
                await sensor.observe()
                observes.append(time.perf_counter() - observed)
                rows_read.append(sensor.rows_read)
                started = time.perf_counter()
                await app.reconciler.tick()
                whole.append(time.perf_counter() - started)
        finally:
            await app.aclose()
    return {
        "customers": count,
        "changes_per_tick": changes,
        "first_ticks": len(catching_up),
        "first_tick_max_seconds": round(max(catching_up), 3),
        "first_rows_read": first_rows,
        "observe_median_seconds": round(statistics.median(observes), 4),
        "rows_read_median": statistics.median(rows_read),
        "tick_median_seconds": round(statistics.median(whole), 3),
    }


async def _on_postgres(count: int, ticks: int, changes: int) -> dict[str, Any]:
    async with fresh_database() as url:
        return await _measure(url, count, ticks, changes)


def run(argv: list[str]) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="bench/run.py customers")
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--ticks", type=int, default=5)
    parser.add_argument("--changes", type=int, default=100)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args(argv)
    configure_logging("error", "json", stream=sys.stderr)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as scratch:
        url = f"sqlite+aiosqlite:///{scratch}/bench.db"
        results["sqlite"] = anyio.run(_measure, url, args.customers, args.ticks, args.changes)
    if not args.no_postgres:
        results["postgresql"] = anyio.run(_on_postgres, args.customers, args.ticks, args.changes)
    print(results, flush=True)
    summary = [
        {
            "benchmark": "11. customers",
            "measure": f"{r['customers']:,} customers, {r['changes_per_tick']} changed per tick, "
            f"{backend}: steady observe / whole tick (median); first read",
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
