"""Benchmark 3: event ingest into PostgreSQL, the store's batch path against a naive loop.

Side by side in one process, on one fresh database: the `EventStore` batch
path (``append`` then one ``flush`` per batch: binary COPY straight into
``events``) and a naive loop that inserts and commits one event at a time
through the same engine. The store redacts three secrets, as a daemon with an
admin token, a read token and a database password does, so ``append`` pays
for redaction and `safe_event` as it does in production. Targets: at least 100,000 events/s, and at
least 20x the naive loop. The naive loop writes fewer events (it is slow);
the ratio compares rates.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
from common import save
from pg import fresh_database

from jarvis.model import Event, EventKind
from jarvis.store import EventStore
from jarvis.store.codec import event_row
from jarvis.store.redact import Redactor
from jarvis.store.tables import events as events_table
from jarvis.telemetry.logging import configure_logging

TARGET_RATE = 100_000
TARGET_RATIO = 20
SECRETS = ("admin-token-0f3c9a7e5b21", "read-token-77d0e1c4a9b8", "db-password-Kq8vZ2")


def _events(prefix: str, count: int) -> list[Event]:
    start = datetime(2026, 1, 5, tzinfo=UTC)
    return [
        Event(
            kind=EventKind.RESOURCE_CHANGED,
            ts=start + timedelta(milliseconds=i),
            idempotency_key=f"{prefix}:{i}",
            tick_id=f"tick-{i // 1000}",
            resource=f"sim://svc-{i % 10_000:05d}",
            reason="crashed",
            payload={"health": "unhealthy", "version": "v3", "replicas": {"desired": 3}},
        )
        for i in range(count)
    ]


async def _batch(store: EventStore, total: int, batch: int) -> float:
    data = _events("batch", total)
    started = time.perf_counter()
    for offset in range(0, total, batch):
        store.append(data[offset : offset + batch])
        await store.flush()
    return total / (time.perf_counter() - started)


async def _naive(store: EventStore, total: int) -> float:
    data = _events("naive", total)
    insert = events_table.insert()
    started = time.perf_counter()
    for event in data:
        async with store.engine.begin() as connection:
            await connection.execute(insert, event_row(event))
    return total / (time.perf_counter() - started)


async def _run(total: int, naive_total: int, batch: int, rounds: int) -> dict[str, Any]:
    configure_logging("error", "json", stream=sys.stderr)
    async with fresh_database() as url:
        store = await EventStore.connect(url, auto_migrate=True, redactor=Redactor(SECRETS))
        try:
            rounds_out = []
            for _ in range(rounds):
                naive = await _naive(store, naive_total)
                batched = await _batch(store, total, batch)
                rounds_out.append(
                    {"batch_events_per_s": round(batched), "naive_events_per_s": round(naive)}
                )
                # A fresh key space each round: the unique index must not turn inserts into skips.
                await _truncate(store)
        finally:
            await store.aclose()
    return {"rounds": rounds_out}


async def _truncate(store: EventStore) -> None:
    from sqlalchemy import text

    async with store.engine.begin() as connection:
        await connection.execute(text("TRUNCATE events"))


def run(argv: list[str]) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="bench/run.py ingest")
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--naive-events", type=int, default=3_000)
    parser.add_argument("--batch", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    out = anyio.run(_run, args.events, args.naive_events, args.batch, args.rounds)
    best = max(out["rounds"], key=lambda r: r["batch_events_per_s"] / r["naive_events_per_s"])
    batch_rate = sorted(r["batch_events_per_s"] for r in out["rounds"])[len(out["rounds"]) // 2]
    ratios = sorted(r["batch_events_per_s"] / r["naive_events_per_s"] for r in out["rounds"])
    ratio = ratios[len(ratios) // 2]
    summary = [
        {
            "benchmark": "3. event ingest (PostgreSQL)",
            "measure": f"batch path, {args.batch:,} events per flush (median of {args.rounds})",
            "target": f">= {TARGET_RATE:,} events/s",
            "measured": f"{batch_rate:,} events/s",
            "meets": batch_rate >= TARGET_RATE,
        },
        {
            "benchmark": "3. event ingest (PostgreSQL)",
            "measure": "batch path / one commit per event, same process",
            "target": f">= {TARGET_RATIO}x",
            "measured": f"{ratio:.0f}x",
            "meets": ratio >= TARGET_RATIO,
        },
    ]
    return save(
        "ingest",
        {
            "events": args.events,
            "naive_events": args.naive_events,
            "batch": args.batch,
            **out,
            "best_round": best,
            "median_ratio": round(ratio, 1),
            "summary": summary,
        },
    )
