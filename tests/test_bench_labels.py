"""Each benchmark names its rows as docs/benchmarks.md's table numbers them.

`bench/run.py` replaces a result file's rows of the table with the rows the
script writes, first cell included. Four scripts still wrote numbers the
table had since moved on from (spool and failover as 7, the DNS failover
policy and simulated customers as 13), so a run turned "9. spool" into a
second "7." row. This reads the labels from the scripts' source: failover's
run takes a lease's expiry, too long to run here.
"""

from __future__ import annotations

import ast
import re

from tests.bench_support import BENCH

DOCS = BENCH.parent / "docs" / "benchmarks.md"
NUMBERED = re.compile(r"\d+\. ")


def _written() -> dict[str, str]:
    """Every numbered row label a script under bench/ writes, with the script's name."""
    found: dict[str, str] = {}
    for script in sorted(BENCH.glob("*.py")):
        for node in ast.walk(ast.parse(script.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Dict):
                continue
            for key, value in zip(node.keys, node.values, strict=True):
                if (
                    isinstance(key, ast.Constant)
                    and key.value == "benchmark"
                    and isinstance(value, ast.Constant)
                    and isinstance(value.value, str)
                    and NUMBERED.match(value.value)
                ):
                    found[value.value] = script.name
    return found


def _tabled() -> set[str]:
    """The first cell of every row of the table in docs/benchmarks.md."""
    text = DOCS.read_text(encoding="utf-8")
    table = text.split("<!-- bench-table:start -->")[1].split("<!-- bench-table:end -->")[0]
    cells = (line.strip().strip("|").split("|")[0].strip() for line in table.splitlines())
    return {cell for cell in cells if NUMBERED.match(cell)}


def test_every_row_a_benchmark_writes_is_numbered_as_the_table_numbers_it() -> None:
    """A label no row of the table has would add a row under a stale number."""
    tabled = _tabled()
    stale = {label: script for label, script in _written().items() if label not in tabled}
    assert not stale, f"labels the table does not use: {stale}"


def test_every_row_of_the_table_is_written_by_a_benchmark() -> None:
    """A row no script writes would never be replaced by a run."""
    assert _tabled() - set(_written()) == set()
