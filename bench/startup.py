"""Benchmark 5: start-up, from process start to ``/readyz`` answering 200.

Starts ``jarvis run`` on the embedded default (a fresh SQLite file, the
simulated fleet) as a subprocess on a free port, polls ``/readyz`` every 5 ms
until it answers 200, and stops it with SIGTERM. Repeated; the median counts.
Also records ``python -X importtime`` for ``jarvis.cli`` (the heaviest
imports), so a shortfall says where the time goes. Target: under 1 s.
"""

from __future__ import annotations

import argparse
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

TARGET_SECONDS = 1.0


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


def _once() -> float:
    jarvis = str(Path(sys.executable).parent / "jarvis")
    port = _free_port()
    with tempfile.TemporaryDirectory() as scratch:
        env = {k: v for k, v in os.environ.items() if not k.startswith("JARVIS_")}
        env.update(
            JARVIS_DATABASE_URL=f"sqlite+aiosqlite:///{scratch}/jarvis.db",
            JARVIS_SPOOL_PATH=f"{scratch}/spool.jsonl",
            JARVIS_LOG_FORMAT="json",
        )
        started = time.perf_counter()
        process = subprocess.Popen(
            [jarvis, "run", "--http-port", str(port)],
            cwd=scratch,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
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


def _import_times() -> list[dict[str, Any]]:
    """The heaviest packages imported by ``import jarvis.cli``, by cumulative time."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import jarvis.cli"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    by_package: dict[str, float] = {}
    for line in result.stderr.splitlines():
        match = re.match(r"import time:\s+\d+ \|\s+(\d+) \|\s*(\S+)", line)
        if match is None:
            continue
        module = match.group(2)
        package = (
            ".".join(module.split(".")[:2]) if module.startswith("jarvis") else module.split(".")[0]
        )
        by_package[package] = max(by_package.get(package, 0.0), int(match.group(1)) / 1000)
    ranked = sorted(by_package.items(), key=lambda item: -item[1])[:15]
    return [{"package": name, "cumulative_ms": round(ms, 1)} for name, ms in ranked]


def run(argv: list[str]) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="bench/run.py startup")
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args(argv)
    times = [_once() for _ in range(args.runs)]
    median = statistics.median(times)
    imports = _import_times()
    print({"median_seconds": round(median, 3), "runs": [round(t, 3) for t in times]}, flush=True)
    return save(
        "startup",
        {
            "runs": [round(t, 3) for t in times],
            "median_seconds": round(median, 3),
            "top_level_imports_of_jarvis_cli": imports,
            "summary": [
                {
                    "benchmark": "5. start-up",
                    "measure": "`jarvis run` start to /readyz 200, embedded default (median)",
                    "target": f"< {TARGET_SECONDS:g} s",
                    "measured": f"{median:.2f} s",
                    "meets": median < TARGET_SECONDS,
                }
            ],
        },
    )
