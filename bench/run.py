"""Run the benchmarks: ``uv run python bench/run.py [NAME [OPTIONS]]``.

Names: tick, simulation (also writes memory), ingest, killswitch, startup, cli, custodian,
spool, failover, customers, shards, webhooks, dns_failover, sim_customers, fleetcap,
outbox;
one name, or none for all. Each writes ``bench/results/<name>.json``; afterwards the
rows of those files in ``docs/benchmarks.md``'s table are replaced, and no other row. Options
after the name go to that benchmark (``bench/run.py simulation --days 1``;
``bench/run.py simulation --against 94f92eb`` adds the same run's ratio to that commit).
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import write_table

NAMES = (
    "tick",
    "simulation",
    "ingest",
    "killswitch",
    "startup",
    "cli",
    "custodian",
    "spool",
    "failover",
    "customers",
    "shards",
    "webhooks",
    "dns_failover",
    "sim_customers",
    "fleetcap",
    "outbox",
)


def main(argv: list[str]) -> int:
    if argv and argv[0] in NAMES:
        chosen, options = [argv[0]], argv[1:]
    elif not argv:
        chosen, options = list(NAMES), []
    else:
        print(f"usage: bench/run.py [{'|'.join(NAMES)}] [OPTIONS]", file=sys.stderr)
        return 2
    for name in chosen:
        module = importlib.import_module(name if name != "tick" else "tick_overhead")
        print(f"== {name}", flush=True)
        result = module.run(options)
        summaries = [
            row
            for part in (result.values() if "summary" not in result else [result])
            for row in part.get("summary", [])
        ]
        print(json.dumps(summaries, indent=2))
    write_table()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
