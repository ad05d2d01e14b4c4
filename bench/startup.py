"""Benchmark 5: start-up, from process start to ``/readyz`` answering 200.

Starts ``jarvis run`` on the embedded default (the simulated fleet, SQLite)
as a subprocess on a free port, polls ``/readyz`` every 5 ms until it answers
200, and stops it with SIGTERM. Two cases, each repeated (the median counts):
a first start, which creates and migrates the database, and a restart on that
database, which is what an orchestrator does all day. Jarvis's own modules are
byte-compiled first, as they are in the image (``uv sync --no-editable``).
Also records what one more restart, under ``python -X importtime``, imports
before it is ready, per package, so a shortfall says where the time goes.
Targets (issue 16): a first start within 1 s, a restart within 0.5 s.

Beside the absolute figures, a floor measured in the same run, interleaved:
a bare interpreter importing the libraries any daemon of this design loads
(aiohttp, SQLAlchemy's asyncio engine, pydantic settings, prometheus_client,
structlog, typer), with the cyclic collector paused as Jarvis pauses it, and
leaving at once (``os._exit``) when they are in. A start is timed to
``/readyz``, not to an exit, so the floor must not count the interpreter's
teardown of those modules either: a floor that ran to its exit counted about
0.11 s of it on a quiet machine, a fifth of the whole. Start-up as a multiple
of that floor survives a loaded machine, where the absolute times swing 2-4x.
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from common import ROOT, save

TARGET_SECONDS = {"first_start": 1.0, "restart": 0.5}
FLOOR_IMPORTS = (
    "import aiohttp.web, sqlalchemy.ext.asyncio, pydantic_settings, prometheus_client,"
    " structlog, typer"
)
FLOOR_CODE = f"import gc, os; gc.disable(); {FLOOR_IMPORTS}; os._exit(0)"
"""The floor's whole program: the imports, and an exit that skips the teardown a start
never pays before it is ready."""


def _floor() -> float:
    """Seconds for a bare interpreter to import the daemon's third-party libraries."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", FLOOR_CODE], check=True)
    return time.perf_counter() - started


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=0.5) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _start(scratch: str, *, importtime: Path | None = None) -> float:
    """Seconds from spawning ``jarvis run`` in ``scratch`` to ``/readyz`` answering 200
    (``importtime``: run under ``python -X importtime``, its report written there)."""
    jarvis = str(Path(sys.executable).parent / "jarvis")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("JARVIS_")}
    env.update(
        JARVIS_DATABASE_URL=f"sqlite+aiosqlite:///{scratch}/jarvis.db",
        JARVIS_SPOOL_PATH=f"{scratch}/spool.jsonl",
        JARVIS_LOG_FORMAT="json",
    )
    command = [jarvis, "run", "--http-port", str(port)]
    if importtime is not None:
        command = [sys.executable, "-X", "importtime", *command]
    with contextlib.ExitStack() as stack:
        stderr = (
            subprocess.DEVNULL if importtime is None else stack.enter_context(importtime.open("w"))
        )
        started = time.perf_counter()
        process = subprocess.Popen(
            command, cwd=scratch, env=env, stdout=subprocess.DEVNULL, stderr=stderr
        )
        try:
            deadline = started + 30
            while not _ready(port):
                if time.perf_counter() > deadline or process.poll() is not None:
                    raise RuntimeError("jarvis run did not become ready")
                time.sleep(0.005)
            return time.perf_counter() - started
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=15)


def _once() -> tuple[float, float, float]:
    """(first start on a new database, restart on the same database, the floor)."""
    with tempfile.TemporaryDirectory() as scratch:
        return _start(scratch), _start(scratch), _floor()


def _import_times() -> list[dict[str, Any]]:
    """What a restart imports before it is ready, by package: the milliseconds ``python -X
    importtime`` gives each module itself, summed per package (Jarvis's per subpackage), the
    heaviest first. Self times add up, unlike cumulative ones, so the shares compare."""
    with tempfile.TemporaryDirectory() as scratch:
        _start(scratch)  # the database the restart finds
        report = Path(scratch) / "importtime.txt"
        _start(scratch, importtime=report)
        lines = report.read_text().splitlines()
    by_package: dict[str, float] = {}
    for line in lines:
        match = re.match(r"import time:\s+(\d+) \|\s+\d+ \|\s*(\S+)", line)
        if match is None:
            continue
        module = match.group(2)
        parts = module.split(".")
        package = ".".join(parts[:2]) if parts[0] == "jarvis" else parts[0]
        by_package[package] = by_package.get(package, 0.0) + int(match.group(1)) / 1000
    ranked = sorted(by_package.items(), key=lambda item: -item[1])
    return [{"package": name, "self_ms": round(ms, 1)} for name, ms in ranked[:20]] + [
        {"package": "(all)", "self_ms": round(sum(by_package.values()), 1)}
    ]


def run(argv: list[str]) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="bench/run.py startup")
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args(argv)
    compileall.compile_dir(ROOT / "jarvis", quiet=1)
    pairs = [_once() for _ in range(args.runs)]
    first = [round(pair[0], 3) for pair in pairs]
    again = [round(pair[1], 3) for pair in pairs]
    floor = [round(pair[2], 3) for pair in pairs]
    medians = {"first_start": statistics.median(first), "restart": statistics.median(again)}
    floor_median = statistics.median(floor)
    # Pair by pair: each start against the floor measured right after it.
    ratios = {
        "first_start": statistics.median(p[0] / p[2] for p in pairs),
        "restart": statistics.median(p[1] / p[2] for p in pairs),
    }
    imports = _import_times()
    print({name: round(value, 3) for name, value in medians.items()}, flush=True)
    labels = {
        "first_start": "first start (creates and migrates the database)",
        "restart": "restart on an existing database",
    }
    return save(
        "startup",
        {
            "runs_first_start": first,
            "runs_restart": again,
            "runs_floor": floor,
            "floor_program": FLOOR_CODE,
            "median_floor_seconds": round(floor_median, 3),
            "median_ratio_to_floor": {name: round(value, 2) for name, value in ratios.items()},
            "median_seconds": {name: round(value, 3) for name, value in medians.items()},
            "restart_imports_by_package": imports,
            "summary": [
                {
                    "benchmark": "5. start-up",
                    "measure": f"`jarvis run` to /readyz 200, embedded default, {label} (median)",
                    "target": f"<= {TARGET_SECONDS[name]:g} s",
                    "measured": f"{medians[name]:.2f} s "
                    f"({ratios[name]:.2f}x the library-import floor, pair by pair)",
                    "meets": medians[name] <= TARGET_SECONDS[name],
                }
                for name, label in labels.items()
            ],
        },
    )
