"""Shared by the benchmark scripts: where results go and how the docs table is made.

Each benchmark (``bench/<name>.py``) exposes ``run(args) -> dict`` and is called
by ``bench/run.py``; its result is written to ``bench/results/<name>.json`` and
the table in ``docs/benchmarks.md`` is rebuilt from every result file present.
Benchmarks measure; they never fail because a machine is slow.
"""

from __future__ import annotations

import json
import os
import platform
import resource
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


def save(name: str, result: dict[str, Any]) -> dict[str, Any]:
    """Write ``bench/results/<name>.json`` (with the machine's details) and return it."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    result = {"benchmark": name, "machine": machine(), **result}
    text = json.dumps(result, indent=2, sort_keys=True) + "\n"
    (RESULTS / f"{name}.json").write_text(text, encoding="utf-8")
    return result


def rows() -> list[dict[str, Any]]:
    """One table row per result file that carries a ``summary``."""
    found: list[dict[str, Any]] = []
    for path in sorted(RESULTS.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        for row in data.get("summary", []):
            found.append({**row, "file": path.name})
    return sorted(found, key=lambda row: str(row["benchmark"]))


def write_table() -> None:
    """Replace the table between the markers in docs/benchmarks.md."""
    lines = [
        TABLE_START,
        "| benchmark | measure | target | measured | meets target | result file |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows():
        verdict = {True: "yes", False: "**no**", None: "n/a"}[row.get("meets")]
        lines.append(
            f"| {row['benchmark']} | {row['measure']} | {row['target']} | {row['measured']} "
            f"| {verdict} | `bench/results/{row['file']}` |"
        )
    lines.append(TABLE_END)
    table = "\n".join(lines)
    text = DOCS.read_text(encoding="utf-8") if DOCS.exists() else ""
    if TABLE_START in text and TABLE_END in text:
        head, _, rest = text.partition(TABLE_START)
        _, _, tail = rest.partition(TABLE_END)
        text = head + table + tail
    else:
        text = text + "\n" + table + "\n"
    DOCS.parent.mkdir(parents=True, exist_ok=True)
    DOCS.write_text(text, encoding="utf-8")
