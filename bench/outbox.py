"""Benchmark 17: claiming from the notification outbox while a channel is down for hours.

Every row the notifier delivers is claimed first (`jarvis.store.outbox.Outbox.claim`):
the oldest pending row that is due and waits behind no older pending row of its
incident on its channel. While a receiver is down the pending rows pile up. This
fills the outbox as hours of outage leave it, on a fresh PostgreSQL database and
a fresh SQLite file: ``--sent`` delivered rows as history, then ``--pending``
rows over three channels, nine in ten in ``--incidents`` incidents and the rest
one incident each. The oldest pending row of each incident on each channel has
been tried and waits out its backoff; every row behind it was never tried, so
its next attempt is long due and only the older pending row holds it back (it is
written ``waiting``, as `Outbox.commit` writes it). One new alert on a fresh
incident, the only row that can go, is the newest.

Measured, median of ``--repeat`` each: ``claim`` finding that row (claimed with
its next attempt left where it was, so every repeat finds it again), ``claim``
at the moment before it, when nothing can go (every round of an outage ends
so), and ``due`` (50 rows). Each backlog's figures are divided by the same
call's with no backlog at all (the history and the new alert only), measured in
the same run: the ratio is what the backlog costs, whatever the machine's speed.
The plan of the claim that finds nothing is printed for the largest backlog:
``EXPLAIN (ANALYZE, BUFFERS)`` on PostgreSQL, ``EXPLAIN QUERY PLAN`` on SQLite.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
from common import save
from pg import fresh_database
from sqlalchemy import delete, insert, text
from sqlalchemy.ext.asyncio import AsyncEngine

from jarvis.store import EventStore
from jarvis.store.outbox import PENDING, SENT, Outbox, claimable, notifications

CHANNELS = ("slack", "pagerduty", "email")
NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
OUTAGE = timedelta(hours=6)
"""How long the receivers have been down: the pending rows were written over this time."""
CHUNK = 5_000


def _row(key: str, channel: str, incident: str, **values: Any) -> dict[str, Any]:
    return {
        "dedup_key": key,
        "channel": channel,
        "incident": incident,
        "action": "trigger",
        "message": {"channel": channel, "incident": incident, "text": "service unhealthy"},
        "last_error": "",
        **values,
    }


def _sent(count: int) -> list[dict[str, Any]]:
    """Delivered rows, the days before the outage."""
    start = NOW - OUTAGE - timedelta(days=7)
    rows = []
    for i in range(count):
        at = start + timedelta(days=7) * (i / count)
        rows.append(
            _row(
                f"sent-{i}",
                CHANNELS[i % 3],
                f"old-{i // 4}",
                status=SENT,
                attempts=1,
                next_attempt_at=at,
                created_at=at,
                sent_at=at,
            )
        )
    return rows


def _pending(count: int, incidents: int, tag: str) -> list[dict[str, Any]]:
    """The outage's rows: the oldest of each incident on a channel backing off, the rest
    due long ago and waiting behind it."""
    heads: set[tuple[str, str]] = set()
    rows = []
    for i in range(count):
        channel = CHANNELS[i % 3]
        incident = f"incident-{i % incidents}" if i % 10 else f"lone-{tag}-{i}"
        created = NOW - OUTAGE + OUTAGE * (i / count)
        head = (channel, incident) not in heads
        heads.add((channel, incident))
        rows.append(
            _row(
                f"{tag}-{i}",
                channel,
                incident,
                status=PENDING,
                attempts=4 if head else 0,
                # A backoff of up to half an hour, jittered, after its last failed attempt.
                next_attempt_at=NOW + timedelta(seconds=60 + i % 1700) if head else created,
                created_at=created,
                waiting=not head,  # as `Outbox.commit` marks it (migration 0013)
            )
        )
    return rows


async def _load(engine: AsyncEngine, rows: list[dict[str, Any]]) -> None:
    async with engine.begin() as conn:
        for offset in range(0, len(rows), CHUNK):
            await conn.execute(insert(notifications), rows[offset : offset + CHUNK])


async def _analyze(engine: AsyncEngine) -> None:
    """Statistics as autovacuum (PostgreSQL) or the daemon's own use would have them."""
    async with engine.begin() as conn:
        await conn.execute(text("ANALYZE notifications"))


async def _median_ms(call: Callable[[], Awaitable[object]], repeat: int) -> float:
    await call()  # warm: the pool, the statement cache, the pages
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        await call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


async def _calls(outbox: Outbox, repeat: int) -> dict[str, float]:
    before = NOW - timedelta(seconds=1)

    async def found() -> None:
        row = await outbox.claim(NOW, NOW)
        _expect(row is not None and row.incident == "new-alert", f"claim found {row}")

    async def idle() -> None:
        row = await outbox.claim(before, before)
        _expect(row is None, f"claim found {row} where nothing can go")

    async def due() -> None:
        rows = await outbox.due(NOW)
        _expect(len(rows) == 1, f"due gave {len(rows)} rows, not the new alert alone")

    return {
        "claim_found_ms": await _median_ms(found, repeat),
        "claim_idle_ms": await _median_ms(idle, repeat),
        "due_ms": await _median_ms(due, repeat),
    }


def _expect(held: bool, otherwise: str) -> None:
    """A figure is of the question asked only if the answer is the one the backlog implies."""
    if not held:
        raise RuntimeError(otherwise)


async def _plan(engine: AsyncEngine) -> list[str]:
    """The plan of the claim that finds nothing (rolled back: EXPLAIN ANALYZE runs it)."""
    before = NOW - timedelta(seconds=1)
    query = claimable(before, ()).compile(engine, compile_kwargs={"literal_binds": True})
    prefix = (
        "EXPLAIN (ANALYZE, BUFFERS) "
        if engine.dialect.name == "postgresql"
        else "EXPLAIN QUERY PLAN "
    )
    async with engine.connect() as conn:
        found = await conn.exec_driver_sql(prefix + str(query))
        lines = [" | ".join(str(cell) for cell in row) for row in found]
        await conn.rollback()
    return lines


async def _backend(url: str, options: argparse.Namespace) -> dict[str, Any]:
    store = await EventStore.connect(url, auto_migrate=True)
    engine = store.engine
    outbox = Outbox(engine)
    try:
        await _load(engine, _sent(options.sent))
        results: dict[str, Any] = {}
        plan: list[str] = []
        for count in [0, *options.pending]:
            async with engine.begin() as conn:
                await conn.execute(delete(notifications).where(notifications.c.status == PENDING))
            tag = f"p{count}"
            await _load(engine, _pending(count, options.incidents, tag))
            new = _row(f"{tag}-new", "email", "new-alert", status=PENDING, attempts=0)
            await _load(engine, [{**new, "next_attempt_at": NOW, "created_at": NOW}])
            await _analyze(engine)
            results[str(count)] = await _calls(outbox, options.repeat)
            plan = await _plan(engine)
            print(engine.dialect.name, count, results[str(count)], flush=True)
    finally:
        await store.aclose()
    return {"by_pending": results, "plan": plan}


def _ratios(figures: dict[str, Any]) -> dict[str, dict[str, float]]:
    empty = figures["0"]
    return {
        count: {name: round(ms / empty[name], 1) for name, ms in calls.items()}
        for count, calls in figures.items()
        if count != "0"
    }


async def _measure(options: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    async with fresh_database("jarvis_bench_outbox") as url:
        out["postgresql"] = await _backend(url, options)
    with tempfile.TemporaryDirectory() as folder:
        out["sqlite"] = await _backend(f"sqlite+aiosqlite:///{Path(folder)}/outbox.db", options)
    for backend in out.values():
        backend["ratio_to_no_backlog"] = _ratios(backend["by_pending"])
    return out


def run(args: list[str]) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="bench/run.py outbox")
    parser.add_argument("--pending", type=int, nargs="+", default=[1_000, 10_000, 50_000])
    parser.add_argument("--sent", type=int, default=100_000)
    parser.add_argument("--incidents", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=5)
    options = parser.parse_args(args)
    result = anyio.run(_measure, options)
    largest = str(max(options.pending))
    summary = []
    for backend in ("postgresql", "sqlite"):
        figures = result[backend]["by_pending"]
        ratio = result[backend]["ratio_to_no_backlog"][largest]
        summary.append(
            {
                "benchmark": "17. outbox claim",
                "measure": f"claim with {int(largest):,} rows pending ({options.incidents} "
                f"incidents, 3 channels, heads backing off) and {options.sent:,} sent, "
                f"{backend}: finds the one due row / finds none, median of {options.repeat}",
                "target": "measured, no target",
                "measured": f"{figures[largest]['claim_found_ms']:.1f} ms "
                f"({ratio['claim_found_ms']:g}x empty backlog) / "
                f"{figures[largest]['claim_idle_ms']:.1f} ms "
                f"({ratio['claim_idle_ms']:g}x)",
                "meets": None,
            }
        )
    return save(
        "outbox",
        {
            "pending": options.pending,
            "sent": options.sent,
            "incidents": options.incidents,
            "repeat": options.repeat,
            **result,
            "summary": summary,
        },
    )
