"""Benchmark 3: event ingest into PostgreSQL, the store's batch path against a naive loop.

Side by side in one process, on one fresh database: the `EventStore` batch
path (``append`` then one ``flush`` per batch: binary COPY straight into
``events``) and a naive loop that inserts and commits one event at a time
through the same engine. The store redacts three secrets, as a daemon with an
admin token, a read token and a database password does, so the batch path
pays for redaction and `safe_event` as it does in production (in the flush,
as the COPY streams: `jarvis.store.redact.Storable`). Targets: at least
100,000 events/s, and at least 20x the naive loop. The naive loop writes fewer events (it is slow);
the ratio compares rates.

Each round also times the server's part alone: a bare asyncpg
``copy_records_to_table`` of as many records, built beforehand, into the
same table in one transaction. The batch path's rate over that one, in the
same round, says how much of the ceiling the Python side leaves on the table
whatever the machine's load; so does the server CPU time of each (its
backend's, read from /proc when PostgreSQL runs on this host).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import asyncpg
from common import save
from pg import fresh_database

from jarvis.model import Event, EventKind
from jarvis.store import EventStore
from jarvis.store.codec import EVENT_COLUMNS, event_record, event_row
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


async def _batch(store: EventStore, total: int, batch: int) -> tuple[float, float | None]:
    """Events per second through ``append`` + ``flush``, and the server CPU seconds spent."""
    data = _events("batch", total)
    async with store.engine.connect() as connection:  # every backend the pool holds
        found = await connection.exec_driver_sql(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
        )
        backends = list(found.scalars())
    cpu = [_server_cpu(pid) for pid in backends]
    started = time.perf_counter()
    for offset in range(0, total, batch):
        store.append(data[offset : offset + batch])
        await store.flush()
    rate = total / (time.perf_counter() - started)
    spent = [_spent(pid, before) for pid, before in zip(backends, cpu, strict=True)]
    return rate, None if None in spent else round(sum(s or 0.0 for s in spent), 2)


async def _bare_copy(url: str, total: int, batch: int) -> tuple[float, float | None]:
    """The server's part alone: records built beforehand, one COPY per batch, one commit each."""
    records = [event_record(event) for event in _events("copy", total)]
    connection = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        backend = await connection.fetchval("SELECT pg_backend_pid()")
        cpu = _server_cpu(backend)
        started = time.perf_counter()
        for offset in range(0, total, batch):
            async with connection.transaction():
                await connection.copy_records_to_table(
                    "events", records=records[offset : offset + batch], columns=EVENT_COLUMNS
                )
        rate = total / (time.perf_counter() - started)
        return rate, _spent(backend, cpu)
    finally:
        await connection.close()


def _server_cpu(pid: int) -> float | None:
    """CPU seconds of a PostgreSQL backend so far; None when it is not on this host."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _spent(pid: int, before: float | None) -> float | None:
    after = _server_cpu(pid)
    return None if before is None or after is None else round(after - before, 2)


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
                batched, batch_cpu = await _batch(store, total, batch)
                # A fresh key space each time: the unique index must not turn inserts into skips.
                await _truncate(store)
                copied, copy_cpu = await _bare_copy(url, total, batch)
                await _truncate(store)
                rounds_out.append(
                    {
                        "batch_events_per_s": round(batched),
                        "naive_events_per_s": round(naive),
                        "bare_copy_rows_per_s": round(copied),
                        "batch_over_bare_copy": round(batched / copied, 2),
                        "server_cpu_s": {"batch": batch_cpu, "bare_copy": copy_cpu},
                    }
                )
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
    bare = sorted(r["bare_copy_rows_per_s"] for r in out["rounds"])[len(out["rounds"]) // 2]
    of_bare = sorted(r["batch_over_bare_copy"] for r in out["rounds"])[len(out["rounds"]) // 2]
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
        {
            "benchmark": "3. event ingest (PostgreSQL)",
            "measure": "batch path / bare asyncpg COPY of prepared records, same round (median)",
            "target": "(the server's ceiling)",
            "measured": f"{of_bare:.2f} (bare COPY {bare:,} rows/s)",
            "meets": None,
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
            "median_bare_copy_rows_per_s": bare,
            "median_batch_over_bare_copy": of_bare,
            "summary": summary,
        },
    )
