"""Benchmark 9: what a flush costs while events wait in the spool, and ticks through an outage.

1. Flush cost with 20,000 events spooled and the database away: the spool
   used to be re-read and re-parsed whole on every flush (`full_reread`
   below is that code, measured in the same run); now a flush reads at
   most one chunk once and keeps it while the database stays away. Printed:
   the old re-read, the new first and steady-state failed flush, and the
   ratio of the old re-read to the new steady-state flush. Also: the drain
   of the 20,000 events when the database is back.
2. A 60 s outage at 1,000 services: 30 ticks at a 2 s interval with the
   event database refusing every call (the simulation's in-memory backend
   switched off; the kill switch stays readable, so heal acts and every
   apply flushes twice), 1 % of the fleet crashing per tick. Counted: ticks
   whose wall time exceeded the 2 s tick timeout. Run it on an older
   checkout with ``PYTHONPATH=<checkout>`` for the "before" figure.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
from common import save

from jarvis.actuators.sim import SimulatedActuator
from jarvis.app import build_app
from jarvis.loop.clock import VirtualClock
from jarvis.model import Event, EventKind
from jarvis.simulation import simulation_settings
from jarvis.store import EventStore, MemoryBackend, MemoryKillSwitch
from jarvis.store.codec import event_from_json, event_to_json
from jarvis.telemetry.logging import configure_logging

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def events(count: int, prefix: str) -> list[Event]:
    """Events shaped like a tick's: a resource, a reason, a small payload."""
    return [
        Event(
            kind=EventKind.RESOURCE_CHANGED,
            ts=T0 + timedelta(milliseconds=i),
            idempotency_key=f"{prefix}:{i}",
            tick_id=f"{prefix}-tick-{i // 100}",
            resource=f"sim://service-{i % 1000}",
            reason="unhealthy: crash loop",
            payload={"health": "unhealthy", "version": "v12", "replicas": {"desired": 3}},
        )
        for i in range(count)
    ]


def full_reread(path: Path) -> list[Event]:
    """What every flush did before: read the whole spool and parse every line."""
    return [event_from_json(line) for line in path.read_text(encoding="utf-8").splitlines()]


async def flush_cost(spooled: int, repeats: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "spool.jsonl"
        path.write_text(
            "".join(event_to_json(e) + "\n" for e in events(spooled, "old")), encoding="utf-8"
        )
        old = []
        for _ in range(repeats):
            started = time.perf_counter()
            full_reread(path)
            old.append(time.perf_counter() - started)

        backend = MemoryBackend()
        backend.available = False
        store = await EventStore.in_memory(spool_path=path, backend=backend)
        new = []
        for index in range(repeats + 1):
            store.append(events(50, f"tick-{index}"))
            started = time.perf_counter()
            result = await store.flush()
            new.append(time.perf_counter() - started)
            if result.written:
                raise RuntimeError("the database was meant to be away")
        backend.available = True
        started = time.perf_counter()
        drained = await store.flush()
        drain = time.perf_counter() - started
        await store.aclose()
    first, steady = new[0], statistics.median(new[1:])
    reread = statistics.median(old)
    return {
        "spooled": spooled,
        "old_full_reread_seconds": round(reread, 4),
        "new_first_failed_flush_seconds": round(first, 4),
        "new_failed_flush_seconds": round(steady, 5),
        "ratio_old_to_new": round(reread / steady, 1),
        "drain_seconds": round(drain, 3),
        "drained_events": drained.written,
    }


async def outage(services: int, ticks: int, interval: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as scratch:
        settings = simulation_settings(
            database_url="sqlite+aiosqlite:///unused.db",
            spool_path=Path(scratch) / "spool.jsonl",
        )
        clock = VirtualClock()
        actuator = SimulatedActuator.create(clock, seed=1, services=services, script=False)
        backend = MemoryBackend()
        spool = Path(scratch) / "spool.jsonl"
        store = await EventStore.in_memory(spool_path=spool, backend=backend)
        app = await build_app(
            settings,
            clock=clock,
            actuators=[actuator],
            store=store,
            switch=MemoryKillSwitch(),
            run_id="bench",
        )
        names = actuator.fleet.names
        durations: list[float] = []
        try:
            backend.available = False
            for index in range(ticks):
                await clock.sleep(interval)
                for offset in range(max(1, services // 100)):
                    actuator.fleet.crash(names[(index * 37 + offset * 101) % services])
                started = time.perf_counter()
                await app.reconciler.tick()
                durations.append(time.perf_counter() - started)
            spooled = app.store.spooled
        finally:
            backend.available = True
            await app.aclose()
    return {
        "services": services,
        "ticks": ticks,
        "tick_timeout_seconds": interval,
        "timed_out": sum(1 for d in durations if d > interval),
        "median_tick_seconds": round(statistics.median(durations), 3),
        "max_tick_seconds": round(max(durations), 3),
        "spooled_at_end": spooled,
    }


def run(argv: list[str]) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="bench/run.py spool")
    parser.add_argument("--spooled", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--outage-seconds", type=float, default=60.0)
    parser.add_argument("--interval", type=float, default=2.0)
    parser.add_argument("--no-save", action="store_true", help="print only (for an old checkout)")
    args = parser.parse_args(argv)
    configure_logging("error", "json", stream=sys.stderr)
    cost = anyio.run(flush_cost, args.spooled, args.repeats) if not args.no_save else {}
    ticks = round(args.outage_seconds / args.interval)
    through = anyio.run(outage, args.services, ticks, args.interval)
    print({"flush": cost, "outage": through}, flush=True)
    if args.no_save:
        return {"flush": cost, "outage": through}
    summary = [
        {
            "benchmark": "9. spool",
            "measure": f"failed flush with {cost['spooled']:,} events spooled",
            "target": "no re-read of what waits",
            "measured": f"{cost['new_failed_flush_seconds'] * 1000:.1f} ms "
            f"(full re-read {cost['old_full_reread_seconds']:.2f} s, "
            f"{cost['ratio_old_to_new']:g}x)",
            "meets": cost["ratio_old_to_new"] > 10,
        },
        {
            "benchmark": "9. spool",
            "measure": f"{args.outage_seconds:g} s outage, {args.services:,} services",
            "target": "no tick times out",
            "measured": f"{through['timed_out']} of {through['ticks']} ticks timed out",
            "meets": through["timed_out"] == 0,
        },
    ]
    return save("spool", {"flush": cost, "outage": through, "summary": summary})


if __name__ == "__main__":
    run(sys.argv[1:])
