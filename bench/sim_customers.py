"""Benchmark 15: what simulated customers cost a simulation, and that they cost nothing when off.

Runs the same simulation (seed, days, services, default faults, in-memory
store) twice in one process: without customers (the default run, what
``jarvis simulate`` does unless ``--customers`` is given) and with
``--customers N`` signing up over it. Reported: both wall times and their
ratio, measured in the same run on the same machine; and the ms per tick of
the default run, to compare with benchmark 2's. Target: the default run is
unchanged (customers are opt-in; nothing of them runs when off); with them, the
ratio is recorded, not bounded.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
from common import save

from jarvis.simulation import SimulationConfig, run_simulation, simulation_settings
from jarvis.telemetry.logging import configure_logging


def options(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/run.py sim_customers")
    parser.add_argument("--days", type=float, default=2.0)
    parser.add_argument("--services", type=int, default=50)
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    return parser.parse_args(argv)


async def _once(args: argparse.Namespace, customers: int) -> tuple[float, dict[str, Any]]:
    with tempfile.TemporaryDirectory() as scratch:
        settings = simulation_settings(
            spool_path=Path(scratch) / "s.jsonl", customers=customers > 0
        )
        config = SimulationConfig(
            seed=args.seed, days=args.days, services=args.services, customers=customers
        )
        started = time.perf_counter()
        report = await run_simulation(settings, config)
        return time.perf_counter() - started, report.as_dict()


async def _run(args: argparse.Namespace) -> dict[str, Any]:
    configure_logging("error", "json", stream=sys.stderr)
    plain_wall, plain = await _once(args, 0)
    with_wall, with_customers = await _once(args, args.customers)
    return {
        "plain_wall": plain_wall,
        "plain": plain,
        "with_wall": with_wall,
        "with": with_customers,
    }


def run(argv: list[str]) -> dict[str, Any]:
    args = options(argv)
    out = anyio.run(_run, args)
    plain, with_customers = out["plain"], out["with"]
    ratio = out["with_wall"] / out["plain_wall"]
    per_tick_ms = out["plain_wall"] / max(1, plain["ticks"]) * 1000
    result = {
        "days": args.days,
        "services": args.services,
        "customers": args.customers,
        "load_average": os.getloadavg(),
        "plain_wall_seconds": round(out["plain_wall"], 2),
        "plain_ms_per_tick": round(per_tick_ms, 2),
        "with_customers_wall_seconds": round(out["with_wall"], 2),
        "ratio": round(ratio, 2),
        "invariants_ok": plain["ok"] and with_customers["ok"],
        "customers_report": with_customers.get("customers"),
        "summary": [
            {
                "benchmark": "15. simulated customers",
                "measure": f"wall time, {args.days:g} days x {args.services} services: "
                f"with {args.customers:,} customers / without (same run)",
                "target": "recorded; the default run has none",
                "measured": f"{out['with_wall']:.1f} s / {out['plain_wall']:.1f} s = {ratio:.2f}x "
                f"(without: {per_tick_ms:.1f} ms/tick)",
                "meets": None,
            }
        ],
    }
    save("sim_customers", result)
    return result
