"""Benchmarks 2 and 6: simulation speed and resident memory across a long simulation.

One run of `jarvis.simulation.run_simulation` (all faults, all policies the
composition root builds, the in-memory store unless ``--database sqlite``) with RSS sampled every
simulated hour. Writes ``simulation.json`` (wall seconds for the simulated
days; target: 30 days x 50 services in under 60 s) and ``memory.json`` (RSS
growth after the first simulated day, or the first half of a run under two
days, and says which; target: under 10 MB). With ``--days`` below 30 the wall
time is also extrapolated linearly to 30 days, and says so.
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
from common import calibration, rss_mb, save

from jarvis.cli import heap
from jarvis.simulation import SimulationConfig, run_simulation, simulation_settings
from jarvis.telemetry.logging import configure_logging

TARGET_SECONDS = 60.0
TARGET_GROWTH_MB = 10.0


def options(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/run.py simulation")
    parser.add_argument("--days", type=float, default=30.0)
    parser.add_argument("--services", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--database",
        choices=["memory", "sqlite"],
        default="memory",
        help="memory: the simulation's in-memory store (its default); sqlite: a SQLite file",
    )
    return parser.parse_args(argv)


async def _run(args: argparse.Namespace) -> dict[str, Any]:
    configure_logging("error", "json", stream=sys.stderr)
    samples: list[tuple[float, float]] = []
    next_sample = [0.0]

    def progress(done: float, _total: float) -> None:
        if done >= next_sample[0]:
            samples.append((round(done / 86_400, 3), round(rss_mb(), 2)))
            next_sample[0] = done + 3600

    with tempfile.TemporaryDirectory() as scratch:
        url = None if args.database == "memory" else f"sqlite+aiosqlite:///{scratch}/sim.db"
        settings = simulation_settings(spool_path=Path(scratch) / "s.jsonl")
        config = SimulationConfig(
            seed=args.seed, days=args.days, services=args.services, database_url=url
        )
        before = calibration()
        started = time.perf_counter()
        report = await run_simulation(settings, config, progress=progress)
        wall = time.perf_counter() - started
        after = calibration()
    return {
        "report": report.as_dict(),
        "wall": wall,
        "samples": samples,
        "calibration": (before, after),
    }


def run(argv: list[str]) -> dict[str, Any]:
    args = options(argv)
    heap.settle()  # as `jarvis simulate` does once its start-up is done
    out = anyio.run(_run, args)
    report, wall, samples = out["report"], out["wall"], out["samples"]
    ticks = report["ticks"]
    per_tick_ms = wall / max(1, ticks) * 1000
    per_service_tick_us = per_tick_ms * 1000 / args.services
    thirty_days = wall * 30 / args.days
    extrapolated = args.days < 30
    # The machine's speed around the run: the month in calibration runs moves
    # with the code more than with the VM (see `common.calibration`).
    unit = statistics.mean(out["calibration"])
    speed = {
        "days": args.days,
        "services": args.services,
        "database": args.database,
        "ticks": ticks,
        "wall_seconds": round(wall, 2),
        "ms_per_tick": round(per_tick_ms, 2),
        "us_per_service_tick": round(per_service_tick_us, 1),
        "calibration_seconds": [round(c, 4) for c in out["calibration"]],
        "thirty_days_in_calibrations": round(thirty_days / unit),
        "thirty_day_wall_seconds": round(thirty_days, 1),
        "extrapolated": extrapolated,
        "invariants_ok": report["ok"],
        "summary": [
            {
                "benchmark": "2. simulation speed",
                "measure": f"wall time, 30 days x {args.services} services"
                + (f" (extrapolated from {args.days:g} days)" if extrapolated else ""),
                "target": f"< {TARGET_SECONDS:g} s",
                "measured": f"{thirty_days:.0f} s ({per_service_tick_us:.1f} µs per service-tick,"
                f" {ticks} ticks run; {thirty_days / unit:.0f}x the calibration loop)",
                "meets": thirty_days < TARGET_SECONDS,
            }
        ],
    }
    save("simulation", {**speed, "report": report})
    warmup = min(1.0, args.days / 2)  # day 1, or half a shorter run
    after_warmup = [rss for day, rss in samples if day >= warmup]
    growth = (after_warmup[-1] - after_warmup[0]) if len(after_warmup) > 1 else 0.0
    max_rss = max((rss for _, rss in samples), default=0.0)
    memory = {
        "days": args.days,
        "services": args.services,
        "database": args.database,
        "rss_mb_samples": samples,
        "rss_mb_after_warmup_start": after_warmup[0] if after_warmup else None,
        "rss_mb_end": after_warmup[-1] if after_warmup else None,
        "rss_mb_max": max((rss for _, rss in samples), default=None),
        "rss_mb_median": statistics.median(rss for _, rss in samples) if samples else None,
        "growth_mb_after_warmup": round(growth, 2),
        "summary": [
            {
                "benchmark": "6. memory",
                "measure": f"RSS growth after day {warmup:g} over {args.days:g} simulated days",
                "target": f"< {TARGET_GROWTH_MB:g} MB, flat",
                "measured": f"{growth:+.1f} MB (max {max_rss:.0f} MB)",
                "meets": growth < TARGET_GROWTH_MB,
            }
        ],
    }
    save("memory", memory)
    return {"simulation": speed, "memory": memory}
