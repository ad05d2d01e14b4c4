"""Benchmark 7: what a one-shot CLI call costs before it does anything.

An operator reaching for ``jarvis killswitch engage`` should not wait for
imports it does not need (issue 11 item 10); ``jarvis --help`` should answer
within 0.3 s (issue 16). Each command runs as a whole process, repeated, and
the benchmark reports the median CPU seconds (user + system, from the child's
rusage) and wall seconds, beside ``python -c pass`` measured in the same run:
the ratio to that floor is the figure that survives a loaded machine.

The kill switch is engaged on a SQLite database migrated beforehand, as a
running daemon leaves it. Jarvis's own modules are byte-compiled first, as
they are in the image (this checkout sets PYTHONDONTWRITEBYTECODE).
"""

from __future__ import annotations

import argparse
import compileall
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import ROOT, save

HELP_TARGET_SECONDS = 0.3


def _timed(argv: list[str], env: dict[str, str], cwd: str) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one whole process."""
    started = time.perf_counter()
    process = subprocess.Popen(
        argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"{argv} exited {process.returncode}")
    return usage.ru_utime + usage.ru_stime, wall


def run(argv: list[str]) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="bench/run.py cli")
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args(argv)
    compileall.compile_dir(ROOT / "jarvis", quiet=1)
    jarvis = str(Path(sys.executable).parent / "jarvis")
    with tempfile.TemporaryDirectory() as scratch:
        env = {k: v for k, v in os.environ.items() if not k.startswith("JARVIS_")}
        env.update(
            JARVIS_DATABASE_URL=f"sqlite+aiosqlite:///{scratch}/jarvis.db",
            JARVIS_SPOOL_PATH=f"{scratch}/spool.jsonl",
            JARVIS_LOG_FORMAT="json",
        )
        _timed([jarvis, "db", "upgrade"], env, scratch)
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "jarvis --help": [jarvis, "--help"],
            "jarvis killswitch engage": [jarvis, "killswitch", "engage", "--reason", "bench"],
            "jarvis killswitch status": [jarvis, "killswitch", "status"],
        }
        samples: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
        for _ in range(args.runs):  # interleaved, so load swings hit every command alike
            for name, command in commands.items():
                samples[name].append(_timed(command, env, scratch))
    medians = {
        name: {
            "cpu_s": round(statistics.median(cpu for cpu, _ in runs), 3),
            "wall_s": round(statistics.median(wall for _, wall in runs), 3),
        }
        for name, runs in samples.items()
    }
    floor = medians["python -c pass"]["cpu_s"] or 0.001
    for figures in medians.values():
        figures["cpu_x_python"] = round(figures["cpu_s"] / floor, 1)
    print(medians, flush=True)
    help_wall = medians["jarvis --help"]["wall_s"]
    summary = [
        {
            "benchmark": "7. CLI start-up",
            "measure": "`jarvis --help`, whole process, wall (median)",
            "target": f"<= {HELP_TARGET_SECONDS:g} s",
            "measured": f"{help_wall:.2f} s ({medians['jarvis --help']['cpu_s']:.2f} s CPU, "
            f"{medians['jarvis --help']['cpu_x_python']:g}x `python -c pass`)",
            "meets": help_wall <= HELP_TARGET_SECONDS,
        },
        {
            "benchmark": "7. CLI start-up",
            "measure": "`jarvis killswitch engage`, SQLite, whole process, CPU (median)",
            "target": "no HTTP, Alembic, cloud SDK or ORM import",
            "measured": f"{medians['jarvis killswitch engage']['cpu_s']:.2f} s CPU "
            f"({medians['jarvis killswitch engage']['cpu_x_python']:g}x `python -c pass`)",
            "meets": None,
        },
    ]
    return save("cli", {"runs": args.runs, "median": medians, "summary": summary})
