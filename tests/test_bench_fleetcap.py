"""Benchmark 16 (bench/fleetcap.py) runs against the store as it is now.

It broke silently when shard leases began to need the shard count they are
taken under (`PgLease(shards=...)`): every run stopped at its first lease with
a ValueError, and no test ran it. This runs it small on real PostgreSQL.
"""

from __future__ import annotations

import argparse

import pytest

from tests.bench_support import load_bench, sibling


@pytest.mark.anyio
@pytest.mark.timeout(300)
async def test_the_fleet_cap_benchmark_measures_both_paths(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    fleetcap = load_bench("fleetcap")
    # Its databases are made beside the test's own, on the server the tests use.
    monkeypatch.setattr(sibling("pg"), "PG_ADMIN_URL", pg_url)
    options = argparse.Namespace(events=200, intents=20, bound=5, repeat=4, writers=2, seconds=0.5)
    result = await fleetcap._measure(options)
    assert result["flush_ms_with"] > 0 and result["flush_ms_without"] > 0
    assert result["intents_per_s_with"] > 0 and result["intents_per_s_without"] > 0
