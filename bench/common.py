"""Shared by the benchmark scripts: where results go and how the docs table is made.

Each benchmark (``bench/<name>.py``) exposes ``run(args) -> dict`` and is called
by ``bench/run.py``; its result is written to ``bench/results/<name>.json`` and
its rows in the table in ``docs/benchmarks.md`` are replaced (``write_table``).
Benchmarks measure; they never fail because a machine is slow.
"""

from __future__ import annotations

import json
import math
import os
import platform
import resource
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
DOCS = ROOT / "docs" / "benchmarks.md"
PG_ADMIN_URL = os.environ.get(
    "JARVIS_BENCH_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
TABLE_START = "<!-- bench-table:start -->"
TABLE_END = "<!-- bench-table:end -->"


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def rss_mb() -> float:
    """Current resident set size of this process, in MB (Linux /proc)."""
    pages = int(Path("/proc/self/statm").read_text(encoding="ascii").split()[1])
    return pages * resource.getpagesize() / 1_048_576


def calibration(repeats: int = 5) -> float:
    """Seconds of a fixed pure-Python workload on this machine now (the fastest of ``repeats``).

    The mix a tick is made of (dict reads and writes, float arithmetic, small
    tuples), about 0.04 s on these 2-core VMs. A CPU-bound benchmark divided by
    it gives a figure that moves with the code more than with the day's VM or
    its load, which slow both; the fastest run is the least disturbed one.
    """
    best = math.inf
    for _ in range(repeats):
        started = time.perf_counter()
        table: dict[int, tuple[float, int]] = {}
        total = 0.0
        for i in range(200_000):
            table[i & 1023] = (math.sin(i * 0.001) * 100.0, i)
            value, _ = table.get((i * 7) & 1023, (0.0, 0))
            total += value
        best = min(best, time.perf_counter() - started)
    return best


WRITTEN: list[str] = []
"""Result files this process wrote, in order: the table rows that ``write_table`` replaces."""


def save(name: str, result: dict[str, Any]) -> dict[str, Any]:
    """Write ``bench/results/<name>.json`` (with the machine's details) and return it."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    result = {"benchmark": name, "machine": machine(), **result}
    text = json.dumps(result, indent=2, sort_keys=True) + "\n"
    (RESULTS / f"{name}.json").write_text(text, encoding="utf-8")
    WRITTEN.append(f"{name}.json")
    return result


def rows(files: list[str]) -> list[dict[str, Any]]:
    """One table row per ``summary`` entry in each of these result files."""
    found: list[dict[str, Any]] = []
    for name in files:
        data = json.loads((RESULTS / name).read_text(encoding="utf-8"))
        for row in data.get("summary", []):
            found.append({**row, "file": name})
    return found


def _row_file(line: str) -> str | None:
    """The result file a table row names in its last cell (``bench/results/X.json``)."""
    cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
    last = cells[-1].strip("`") if cells else ""
    return last.removeprefix("bench/results/") if last.startswith("bench/results/") else None


def write_table(files: list[str] | None = None) -> None:
    """Replace, in docs/benchmarks.md's table, the rows of the result files just written.

    Only those rows change, in place: every other row, numbering and any figure
    written there by hand (an estimate, a note of the load) stays as it was.
    A result file with no row yet gets its rows at the end of the table.
    """
    written = list(dict.fromkeys(WRITTEN if files is None else files))
    new_rows = {
        name: [
            f"| {row['benchmark']} | {row['measure']} | {row['target']} | {row['measured']} "
            f"| {_VERDICT[row.get('meets')]} | `bench/results/{name}` |"
            for row in rows([name])
        ]
        for name in written
    }
    text = DOCS.read_text(encoding="utf-8") if DOCS.exists() else ""
    if TABLE_START not in text or TABLE_END not in text:
        text += f"\n{TABLE_START}\n{_HEADER}\n{TABLE_END}\n"
    head, _, rest = text.partition(TABLE_START)
    body, _, tail = rest.partition(TABLE_END)
    lines: list[str] = []
    placed: set[str] = set()
    for line in body.strip("\n").splitlines():
        name = _row_file(line)
        if name not in new_rows:
            lines.append(line)
        elif name not in placed:  # the file's new rows where its first old row was
            lines.extend(new_rows[name])
            placed.add(name)
    lines.extend(row for name, made in new_rows.items() if name not in placed for row in made)
    DOCS.write_text(head + TABLE_START + "\n" + "\n".join(lines) + "\n" + TABLE_END + tail, "utf-8")


_VERDICT = {True: "yes", False: "**no**", None: "n/a"}
_HEADER = (
    "| benchmark | measure | target | measured | meets target | result file |\n"
    "|---|---|---|---|---|---|"
)
