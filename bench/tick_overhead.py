"""Benchmark 1: tick overhead against fleet size, all policies on, SQLite and PostgreSQL.

For 100, 1,000 and 10,000 simulated resources: build the app through the
composition root (heal, scaling and rollback as `simulation_settings` enables
them), warm up with a few ticks so the policies have history, then time ticks
in which 1 % of the services crash (so heal proposes restarts and the guard,
intents and outcomes are exercised). Each policy is wrapped to time its
evaluate, so the report says where a tick's time goes. Target: under 1 s per
tick at 10,000 resources, growing linearly.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
from common import save
from pg import fresh_database

from jarvis.actuators.sim import SimulatedActuator
from jarvis.app import build_app, build_policies
from jarvis.loop.clock import VirtualClock
from jarvis.model import History, Snapshot
from jarvis.policies.base import Evaluation, Policy
from jarvis.simulation import simulation_settings
from jarvis.telemetry.logging import configure_logging

TARGET_SECONDS = 1.0


class Timed:
    """Wraps a policy and adds up the time its evaluate takes."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.name = policy.name
        self.seconds = 0.0

    def evaluate(self, snapshot: Snapshot, history: History, now: datetime) -> Evaluation:
        started = time.perf_counter()
        try:
            return self.policy.evaluate(snapshot, history, now)
        finally:
            self.seconds += time.perf_counter() - started


async def _measure(url: str, size: int, ticks: int, warmup: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as scratch:
        settings = simulation_settings(database_url=url, spool_path=Path(scratch) / "s.jsonl")
        clock = VirtualClock()
        actuator = SimulatedActuator.create(clock, seed=1, services=size, script=False)
        policies = [Timed(p) for p in build_policies(settings)]
        app = await build_app(
            settings,
            clock=clock,
            actuators=[actuator],
            policies=policies,
            run_id="bench",
            auto_migrate=True,
        )
        try:
            names = actuator.fleet.names
            durations: list[float] = []
            for index in range(warmup + ticks):
                await clock.sleep(settings.loop.interval)
                for offset in range(max(1, size // 100)):
                    actuator.fleet.crash(names[(index * 37 + offset * 101) % size])
                if index == warmup:
                    for policy in policies:
                        policy.seconds = 0.0
                started = time.perf_counter()
                await app.reconciler.tick()
                if index >= warmup:
                    durations.append(time.perf_counter() - started)
            events = await app.store.count_events()
        finally:
            await app.aclose()
    median = statistics.median(durations)
    return {
        "resources": size,
        "ticks": ticks,
        "median_seconds": round(median, 4),
        "max_seconds": round(max(durations), 4),
        "ms_per_1000_resources": round(median / size * 1_000_000, 2),
        "policy_seconds_per_tick": {p.name: round(p.seconds / ticks, 4) for p in policies},
        "events_stored": events,
    }


async def _all(sizes: Sequence[int], backends: Sequence[str]) -> list[dict[str, Any]]:
    configure_logging("error", "json", stream=sys.stderr)
    results: list[dict[str, Any]] = []
    for backend in backends:
        for size in sizes:
            ticks, warmup = (5, 3) if size >= 10_000 else (10, 3)
            if backend == "postgresql":
                async with fresh_database() as url:
                    row = await _measure(url, size, ticks, warmup)
            else:
                with tempfile.TemporaryDirectory() as scratch:
                    row = await _measure(
                        f"sqlite+aiosqlite:///{scratch}/bench.db", size, ticks, warmup
                    )
            row["backend"] = backend
            print(row, flush=True)
            results.append(row)
    return results


def run(argv: list[str]) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="bench/run.py tick")
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--backends", default="sqlite,postgresql")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = anyio.run(_all, sizes, args.backends.split(","))
    summary = []
    for row in rows:
        if row["resources"] != max(sizes):
            continue
        summary.append(
            {
                "benchmark": "1. tick overhead",
                "measure": f"median tick, {row['resources']:,} resources, {row['backend']}",
                "target": f"< {TARGET_SECONDS:g} s, linear",
                "measured": f"{row['median_seconds']:.2f} s "
                f"(policies {sum(row['policy_seconds_per_tick'].values()):.2f} s)",
                "meets": row["median_seconds"] < TARGET_SECONDS,
            }
        )
    return save("tick", {"rows": rows, "summary": summary})
