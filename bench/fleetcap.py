"""Benchmark 16: what the exact fleet-wide cap costs an intent write (PostgreSQL, shards).

With shards each intent's transaction also takes the fleet-wide advisory lock
and reads the intents in its caps' windows (`jarvis.store.fleetcap`).
Measured on a fresh database holding ``--events`` ordinary events, a full
per-tick window (``--bound`` intents in the last 30 s) and ``--intents``
intents of the budget's kind in the last 10 minutes: the latency of one
intent flush (the intent, its ledger row, the shard fence), alternating with
and without the caps (a per-tick bound and a 10-minute budget, both too large
to refuse) so load drifts hit both alike, median of ``--repeat`` each; then
``--writers`` stores writing intents at once for ``--seconds``, intents per
second with and without (the lock serialises them). The measured intents are
stamped a day back, so the windows hold the same rows throughout.
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
from common import save
from pg import fresh_database

from jarvis.model import BlockReason, Event, EventKind, RetryState
from jarvis.store import EventStore, upgrade
from jarvis.store.fence import Fence
from jarvis.store.fleetcap import Cap
from jarvis.store.lease import PgLease

WINDOW = timedelta(minutes=10)


def _intent(key: str, at: datetime) -> Event:
    return Event(
        kind=EventKind.ACTION_STARTED,
        ts=at,
        idempotency_key=key,
        resource=f"sim://{key}",
        action_kind="scale",
        action_id=key,
    )


def _caps(now: datetime) -> list[Cap]:
    """A per-tick bound and a 10-minute budget, both too large to refuse anything."""
    start = now - timedelta(seconds=30)
    edge = now - WINDOW
    scale = frozenset({"scale"})
    return [
        Cap(BlockReason.BOUNDS, 10**9, start, lambda ts, _r, _k: ts >= start, str),
        Cap(BlockReason.BUDGET, 10**9, edge, lambda ts, _r, _k: ts > edge, str, scale, "sim"),
    ]


async def _seed(store: EventStore, events: int, intents: int, bound: int) -> None:
    now = datetime.now(UTC)
    for chunk in range(0, events, 10_000):
        store.append(
            Event(
                kind=EventKind.METRICS_SAMPLED,
                ts=now - WINDOW * (i / events),
                idempotency_key=f"s{i}",
            )
            for i in range(chunk, min(events, chunk + 10_000))
        )
        await store.flush()
    store.append(_intent(f"seed{i}", now - WINDOW * (i / intents)) for i in range(intents))
    store.append(_intent(f"tick{i}", now - timedelta(seconds=i)) for i in range(bound))
    await store.flush()


async def _write(store: EventStore, key: str, capped: bool) -> float:
    now = datetime.now(UTC)
    store.append([_intent(key, now - timedelta(days=1))])  # outside every window
    store.stage_retry(RetryState(f"sim://{key}", "scale", attempts=(now,)))
    if capped:
        store.stage_caps(key, _caps(now))
    started = time.perf_counter()
    await store.flush()
    return (time.perf_counter() - started) * 1000


_SHARDS = 1000
"""The shard count every lease here is taken under: above every shard index used."""


async def _store(url: str, shard: int) -> EventStore:
    store = await EventStore.connect(url)
    lease = PgLease(
        store.engine, f"bench{shard}", duration=3600, name=f"shard-{shard}", shards=_SHARDS
    )
    epoch = await lease.acquire()
    if epoch is None:
        raise RuntimeError(f"shard-{shard} is held by another process")
    store.fence = (Fence(f"shard-{shard}", f"bench{shard}", epoch),)
    return store


async def _throughput(url: str, writers: int, seconds: float, capped: bool, tag: str) -> float:
    first = 100 if capped else 10  # shards of their own: the first phase's leases are still held
    stores = [await _store(url, first + w) for w in range(writers)]
    done = [0] * writers
    deadline = time.perf_counter() + seconds

    async def writer(index: int) -> None:
        while time.perf_counter() < deadline:
            await _write(stores[index], f"{tag}-{index}-{done[index]}", capped)
            done[index] += 1

    try:
        async with anyio.create_task_group() as group:
            for w in range(writers):
                group.start_soon(writer, w)
    finally:
        for store in stores:
            await store.aclose()
    return sum(done) / seconds


async def _measure(options: argparse.Namespace) -> dict[str, Any]:
    async with fresh_database("jarvis_bench_fleetcap") as url:
        await upgrade(url)
        store = await _store(url, 0)
        try:
            await _seed(store, options.events, options.intents, options.bound)
            plain: list[float] = []
            capped: list[float] = []
            for i in range(options.repeat):
                plain.append(await _write(store, f"p{i}", capped=False))
                capped.append(await _write(store, f"c{i}", capped=True))
        finally:
            await store.aclose()
        without = await _throughput(url, options.writers, options.seconds, False, "tp")
        with_caps = await _throughput(url, options.writers, options.seconds, True, "tc")
    return {
        "events": options.events,
        "intents": options.intents,
        "bound": options.bound,
        "repeat": options.repeat,
        "flush_ms_without": round(statistics.median(plain), 2),
        "flush_ms_with": round(statistics.median(capped), 2),
        "p90_ms_without": round(statistics.quantiles(plain, n=10)[-1], 2),
        "p90_ms_with": round(statistics.quantiles(capped, n=10)[-1], 2),
        "writers": options.writers,
        "seconds": options.seconds,
        "intents_per_s_without": round(without, 1),
        "intents_per_s_with": round(with_caps, 1),
    }


def run(args: list[str]) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="bench/run.py fleetcap")
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--intents", type=int, default=500)
    parser.add_argument("--bound", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=300)
    parser.add_argument("--writers", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0)
    options = parser.parse_args(args)
    if options.repeat < 2:
        parser.error("--repeat must be at least 2: the figures are medians and spreads")
    result = anyio.run(_measure, options)
    print(result, flush=True)
    ratio = result["flush_ms_with"] / result["flush_ms_without"]
    summary = [
        {
            "benchmark": "16. fleet cap",
            "measure": f"intent flush (intent, ledger row, fence), PostgreSQL, "
            f"{result['events']:,} events, {result['bound']} intents in the tick window, "
            f"{result['intents']} in the budget's 10 min: "
            f"median of {result['repeat']} with the caps / without (alternating)",
            "target": "measured, no target",
            "measured": f"{result['flush_ms_with']:.2f} ms / {result['flush_ms_without']:.2f} ms "
            f"= {ratio:.2f}x",
            "meets": None,
        },
        {
            "benchmark": "16. fleet cap",
            "measure": f"{result['writers']} stores writing intents at once for "
            f"{result['seconds']:g} s: intents/s with the caps / without",
            "target": "measured, no target",
            "measured": f"{result['intents_per_s_with']:.0f} / "
            f"{result['intents_per_s_without']:.0f} intents/s = "
            f"{result['intents_per_s_with'] / result['intents_per_s_without']:.2f}x",
            "meets": None,
        },
    ]
    return save("fleetcap", {**result, "summary": summary})
