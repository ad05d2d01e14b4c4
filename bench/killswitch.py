"""Benchmark 4: kill-switch propagation from another process into a running tick.

A tick applies a long batch of actions (200 restarts, each taking 5 ms at the
provider, on the real reconciler, guard and store). Part-way through, a
separate process engages the kill switch through the real backend (the
SQLite event database, the embedded default, or Redis) and reports the
moment its write returned. The figure is the time from that moment to the
start of the last action the provider received; 0 when nothing started after
the flip. Target: p99 under 100 ms.

The flip is timed from the batch's first action, not from the tick's start:
a tick slow to begin acting (observe, evaluation and the first intent on a
loaded machine) would otherwise be flipped before any action, and time
nothing. The switch is left released at the end.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
from common import ROOT, save

from jarvis.actuators.base import Scope
from jarvis.app import build_app
from jarvis.config import load_settings
from jarvis.loop.clock import WallClock
from jarvis.model import (
    Action,
    ActionKind,
    Health,
    History,
    Outcome,
    Replicas,
    ResourceRef,
    ResourceState,
    Restart,
    Snapshot,
)
from jarvis.policies.base import Evaluation
from jarvis.telemetry.logging import configure_logging

TARGET_MS = 100.0
ACTIONS = 200
APPLY_SECONDS = 0.005
REDIS_URL = os.environ.get("JARVIS_BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")

# The other process: waits for "go" on stdin, engages, prints when the write returned.
FLIPPER = """
import sys, time, anyio
from jarvis.config import load_settings
from jarvis.store import DbKillSwitch
from jarvis.store.redis_killswitch import RedisKillSwitch
from jarvis.store.engine import create_engine, normalize_url
from jarvis.model import KillSwitchState

async def main():
    settings = load_settings(database_url=sys.argv[1], redis_url=sys.argv[2] or None)
    if settings.redis_url:
        backend = RedisKillSwitch(settings.redis_url)
        engine = None
    else:
        engine = create_engine(normalize_url(settings.database_url))
        backend = DbKillSwitch(engine)
    await backend.read()
    print("ready", flush=True)
    while True:
        line = await anyio.to_thread.run_sync(sys.stdin.readline)
        if not line:
            break
        engaged = line.strip() == "engage"
        await backend.write(KillSwitchState(engaged=engaged, actor="bench", reason="bench"))
        print(repr(time.time()), flush=True)
    await backend.aclose()
    if engine is not None:
        await engine.dispose()

anyio.run(main)
"""


class SlowFleet:
    """Resources named per trial; every apply takes APPLY_SECONDS and is timestamped."""

    provider = "sim"
    name = "bench"
    action_kinds = frozenset({ActionKind.RESTART})

    def __init__(self) -> None:
        self.trial = 0
        self.starts: list[float] = []
        self.acting = anyio.Event()

    def refs(self) -> list[ResourceRef]:
        return [ResourceRef("sim", f"t{self.trial}-svc-{i:03d}") for i in range(ACTIONS)]

    async def observe(self, _scope: Scope | None = None) -> list[ResourceState]:
        now = WallClock().now()
        return [ResourceState(ref, Health.UNHEALTHY, now, Replicas(1, 0)) for ref in self.refs()]

    async def apply(self, action: Action, key: str) -> Outcome:  # noqa: ARG002 -- the Actuator signature
        self.starts.append(time.time())
        self.acting.set()
        await anyio.sleep(APPLY_SECONDS)
        return Outcome.success()

    async def aclose(self) -> None:
        return None


class RestartAll:
    name = "bench"

    def evaluate(self, snapshot: Snapshot, history: History, now: datetime) -> Evaluation:  # noqa: ARG002 -- the Policy signature
        return Evaluation(
            actions=tuple(
                Action(target=state.ref, params=Restart(), policy=self.name, reason="bench")
                for state in snapshot.resources.values()
            )
        )


async def _trials(backend: str, trials: int) -> list[tuple[float, int]]:
    with tempfile.TemporaryDirectory() as scratch:
        url = f"sqlite+aiosqlite:///{scratch}/bench.db"
        redis_url = REDIS_URL if backend == "redis" else None
        settings = load_settings(
            database_url=url,
            spool_path=Path(scratch) / "spool.jsonl",
            redis_url=redis_url,
            bounds={"max_actions_per_tick": ACTIONS * 2},
        )
        fleet = SlowFleet()
        app = await build_app(
            settings, clock=WallClock(), actuators=[fleet], policies=[RestartAll()], run_id="ks"
        )
        flipper = subprocess.Popen(  # noqa: ASYNC220 -- started once, before the timed part
            [sys.executable, "-c", FLIPPER, url, redis_url or ""],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        if flipper.stdin is None or flipper.stdout is None:
            raise RuntimeError("the flipper process has no pipes")
        try:
            if flipper.stdout.readline().strip() != "ready":
                raise RuntimeError("the flipper process did not start")
            latencies = [await _one(app, fleet, flipper, trial) for trial in range(trials)]
            await _flip(flipper, "release")
        finally:
            flipper.stdin.close()
            flipper.wait(timeout=30)
            flipper.stdout.close()
            await app.aclose()
    return latencies


async def _one(
    app: Any, fleet: SlowFleet, flipper: subprocess.Popen[str], trial: int
) -> tuple[float, int]:
    await _flip(flipper, "release")
    fleet.trial, fleet.starts, fleet.acting = trial, [], anyio.Event()
    flipped: list[float] = []

    async def flip_later() -> None:
        # Somewhere in the first half of the batch, varied per trial.
        await fleet.acting.wait()
        await anyio.sleep(0.02 * (trial % 10))
        flipped.append(await _flip(flipper, "engage"))

    async with anyio.create_task_group() as group:
        group.start_soon(flip_later)
        await app.reconciler.tick()
        if not fleet.acting.is_set():  # nothing to flip in: `run` says the trial is broken
            group.cancel_scope.cancel()
    if not flipped:
        return 0.0, len(fleet.starts)
    after = [start for start in fleet.starts if start > flipped[0]]
    latency = max(0.0, (max(after) - flipped[0]) * 1000) if after else 0.0
    return latency, len(fleet.starts)


async def _flip(flipper: subprocess.Popen[str], command: str) -> float:
    """Have the other process ``engage`` or ``release``; when (epoch seconds) its write returned."""
    stdin, stdout = flipper.stdin, flipper.stdout
    if stdin is None or stdout is None:
        raise RuntimeError("the flipper process has no pipes")
    stdin.write(f"{command}\n")
    stdin.flush()
    return float(await anyio.to_thread.run_sync(stdout.readline))


def _p(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run(argv: list[str]) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="bench/run.py killswitch")
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--backends", default="sqlite,redis")
    args = parser.parse_args(argv)
    configure_logging("error", "json", stream=sys.stderr)
    rows = []
    summary = []
    for backend in args.backends.split(","):
        results = anyio.run(_trials, backend, args.trials)
        latencies = [latency for latency, _ in results]
        applied = [count for _, count in results]
        if min(applied) == 0:
            # A trial with no action started timed nothing: its 0 ms is no result.
            raise RuntimeError(f"{backend}: a trial started no action; the benchmark is broken")
        row = {
            "backend": backend,
            "trials": args.trials,
            "p50_ms": round(statistics.median(latencies), 2),
            "p99_ms": round(_p(latencies, 0.99), 2),
            "max_ms": round(max(latencies), 2),
            "actions_started_per_tick_median": statistics.median(applied),
            "actions_started_per_tick_max": max(applied),
            "latencies_ms": [round(x, 2) for x in latencies],
        }
        print({k: v for k, v in row.items() if k != "latencies_ms"}, flush=True)
        rows.append(row)
        summary.append(
            {
                "benchmark": "4. kill-switch propagation",
                "measure": f"flip in another process to last action started, {backend}",
                "target": f"p99 < {TARGET_MS:g} ms",
                "measured": f"p99 {row['p99_ms']:.1f} ms (p50 {row['p50_ms']:.1f} ms)",
                "meets": row["p99_ms"] < TARGET_MS,
            }
        )
    return save(
        "killswitch",
        {
            "actions_per_tick": ACTIONS,
            "apply_seconds": APPLY_SECONDS,
            "rows": rows,
            "summary": summary,
        },
    )
