"""Benchmark 10: failover between replicas on PostgreSQL, at the default lease timings.

Three ``jarvis run`` processes share one fresh database (lease 15 s, renew
deadline 10 s, retry 2 s: controller-runtime's defaults; ``loop.interval`` 5 s).
Measured from the moment the leader is stopped until another replica reports
``jarvis_leader 1`` on ``/metrics`` and until it finishes its first tick as
leader, for a SIGKILL (the lease must expire: bounded by the lease plus one
retry period plus one interval) and for a SIGTERM (the leader releases the
lease on its way out, so a follower takes it on its next retry). Polled every
50 ms; the figures include that much. Target: a new leader within the lease
plus two retry periods (19 s) after a crash, and within 2 retry periods (4 s)
after a clean stop.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
from common import save
from pg import fresh_database

INTERVAL = 5.0
LEASE, RETRY = 15.0, 2.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _metric(port: int, name: str) -> float | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1) as response:
            text = response.read().decode()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith((name + " ", name + '{outcome="ok"} ')):
            return float(line.rsplit(" ", 1)[1])
    return None


def _wait(check: Any, seconds: float) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        if check():
            return time.perf_counter() - started
        time.sleep(0.05)
    raise RuntimeError("timed out")


def _episode(url: str, stop: signal.Signals) -> tuple[float, float]:
    """Seconds from stopping the leader to (a new leader, its first tick)."""
    jarvis = str(Path(sys.executable).parent / "jarvis")
    with tempfile.TemporaryDirectory() as scratch:
        ports = [_free_port() for _ in range(3)]
        processes = []
        for i, port in enumerate(ports):
            env = {k: v for k, v in os.environ.items() if not k.startswith("JARVIS_")}
            env.update(
                JARVIS_DATABASE_URL=url,
                JARVIS_SPOOL_PATH=f"{scratch}/spool-{i}.jsonl",
                JARVIS_LOG_FORMAT="json",
                JARVIS_HTTP__HOST="127.0.0.1",
            )
            processes.append(
                subprocess.Popen(
                    [jarvis, "run", "--interval", str(INTERVAL), "--http-port", str(port)],
                    cwd=scratch,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        try:
            _wait(lambda: sum(_metric(p, "jarvis_leader") or 0 for p in ports) == 1, 120)
            leader = next(i for i, p in enumerate(ports) if _metric(p, "jarvis_leader") == 1)
            _wait(lambda: (_metric(ports[leader], "jarvis_ticks_total") or 0) >= 1, 60)
            rest = [p for i, p in enumerate(ports) if i != leader]
            ticks = {p: _metric(p, "jarvis_ticks_total") or 0 for p in rest}
            processes[leader].send_signal(stop)
            started = time.perf_counter()
            _wait(lambda: any(_metric(p, "jarvis_leader") == 1 for p in rest), 120)
            elected = time.perf_counter() - started
            _wait(lambda: any((_metric(p, "jarvis_ticks_total") or 0) > ticks[p] for p in rest), 60)
            return elected, time.perf_counter() - started
        finally:
            for process in processes:
                if process.poll() is None:
                    process.terminate()
            for process in processes:
                process.wait(timeout=30)


async def _episodes(runs: int) -> dict[str, list[tuple[float, float]]]:
    found: dict[str, list[tuple[float, float]]] = {"SIGKILL": [], "SIGTERM": []}
    for _ in range(runs):
        for stop in (signal.SIGKILL, signal.SIGTERM):
            async with fresh_database("jarvis_bench_failover") as url:
                await _migrate(url)
                pair = await anyio.to_thread.run_sync(_episode, url, stop)
                found[stop.name].append((round(pair[0], 2), round(pair[1], 2)))
                print(stop.name, found[stop.name][-1], flush=True)
    return found


async def _migrate(url: str) -> None:
    from jarvis.store import upgrade

    await upgrade(url)


def run(argv: list[str]) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="bench/run.py failover")
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args(argv)
    found = anyio.run(_episodes, args.runs)
    targets = {"SIGKILL": LEASE + 2 * RETRY, "SIGTERM": 2 * RETRY}
    summary = []
    for name, pairs in found.items():
        worst_elected = max(p[0] for p in pairs)
        worst_tick = max(p[1] for p in pairs)
        summary.append(
            {
                "benchmark": "10. failover (PostgreSQL, 3 replicas)",
                "measure": f"leader stopped by {name} to a new leader (worst of {len(pairs)}); "
                f"to its first tick at interval {INTERVAL:g} s",
                "target": f"<= {targets[name]:g} s to a new leader",
                "measured": f"{worst_elected:.1f} s; first tick {worst_tick:.1f} s",
                "meets": worst_elected <= targets[name],
            }
        )
    return save("failover", {"episodes": found, "summary": summary})
