"""The benchmarks no other test runs, each run small: each still measures something.

Benchmark 16 broke unnoticed for sessions because nothing ran it. These run
the others that are cheap at a small size, through ``run`` as `bench/run.py`
calls it where the whole benchmark is cheap (result files go to a scratch
directory), or through the function that measures where ``run`` would also
take its PostgreSQL cases. Not here: failover and the shards' rebalance
(each waits out a 15 s lease), custodian (tests/test_bench_custodian.py),
killswitch and fleetcap (their own tests).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.bench_support import load_bench, sibling
from tests.logging_state import restored_logging


@pytest.fixture
def scratch_results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Result files written under ``tmp_path``; logging and the collector restored after."""
    monkeypatch.setattr(sibling("common"), "RESULTS", tmp_path)
    threshold = gc.get_threshold()
    with restored_logging():
        yield tmp_path
    gc.unfreeze()  # `simulation` settles the heap as `jarvis simulate` does
    gc.set_threshold(*threshold)


@pytest.fixture
def bench_pg(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Benchmarks' fresh databases made on the server the tests use."""
    monkeypatch.setattr(sibling("pg"), "PG_ADMIN_URL", pg_url)
    return pg_url


def _summary(result: dict[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = result["summary"]
    assert rows, "a benchmark with no summary row adds nothing to the table"
    return rows


def test_tick_overhead_times_ticks_that_restart_services(scratch_results: Path) -> None:
    """Benchmark 1 at 100 resources on SQLite: ticks timed, events stored, a table row."""
    result = load_bench("tick_overhead").run(["--sizes", "100", "--backends", "sqlite"])
    (row,) = result["rows"]
    assert row["median_seconds"] > 0 and row["events_stored"] > 0
    assert len(_summary(result)) == 1
    assert (scratch_results / "tick.json").exists()


def test_simulation_speed_and_memory_over_a_short_run(scratch_results: Path) -> None:
    """Benchmarks 2 and 6 over 0.05 days: ticks run, invariants hold, the warm-up it used named."""
    result = load_bench("simulation").run(["--days", "0.05", "--services", "5"])
    speed, memory = result["simulation"], result["memory"]
    assert speed["ticks"] > 0 and speed["wall_seconds"] > 0 and speed["invariants_ok"]
    assert memory["rss_mb_samples"]
    (row,) = _summary(memory)
    assert row["measure"] == "RSS growth after day 0.025 over 0.05 simulated days"


@pytest.mark.anyio
async def test_ingest_measures_the_batch_path_the_naive_loop_and_bare_copy(bench_pg: str) -> None:
    """Benchmark 3, 2,000 events in batches of 1,000: every rate is a rate."""
    ingest = load_bench("ingest")
    (rates,) = (await ingest._run(2_000, 50, 1_000, 1))["rounds"]
    assert rates["batch_events_per_s"] > 0 and rates["naive_events_per_s"] > 0
    assert rates["bare_copy_rows_per_s"] > 0


@pytest.mark.anyio
async def test_outbox_claims_behind_a_backlog_on_both_databases(bench_pg: str) -> None:
    """Benchmark 17 at 30 and 60 pending rows over 200 sent: every call timed against the
    empty backlog's, each claim's answer the one the backlog implies, a plan printed."""
    import argparse

    outbox = load_bench("outbox")
    options = argparse.Namespace(pending=[30, 60], sent=200, incidents=5, repeat=2)
    result = await outbox._measure(options)
    for backend in ("postgresql", "sqlite"):
        figures = result[backend]
        assert set(figures["by_pending"]) == {"0", "30", "60"}
        assert all(ms > 0 for calls in figures["by_pending"].values() for ms in calls.values())
        assert set(figures["ratio_to_no_backlog"]) == {"30", "60"}
        assert figures["plan"]


def test_cli_times_each_command_as_a_whole_process(scratch_results: Path) -> None:
    """Benchmark 7, once each: every command ran (exit 0) and took CPU time."""
    result = load_bench("cli").run(["--runs", "1"])
    assert all(figures["wall_s"] > 0 for figures in result["median"].values())
    assert len(_summary(result)) == 2


def test_startup_times_a_first_start_and_a_restart(scratch_results: Path) -> None:
    """Benchmark 5, once: `jarvis run` answered /readyz on a new database and again on it."""
    result = load_bench("startup").run(["--runs", "1"])
    assert all(seconds > 0 for seconds in result["median_seconds"].values())
    assert result["median_floor_seconds"] > 0
    imports = {row["package"]: row["self_ms"] for row in result["restart_imports_by_package"]}
    # The restart's own imports were read: the store's engine and the config's models.
    assert imports["sqlalchemy"] > 0 and imports["jarvis.config"] > 0
    assert imports["(all)"] >= imports["sqlalchemy"] + imports["jarvis.config"]
    assert len(_summary(result)) == 2


def test_spool_times_failed_flushes_and_an_outage(scratch_results: Path) -> None:
    """Benchmark 9, small: the failed flushes kept the events, the drain wrote them all."""
    result = load_bench("spool").run(
        ["--spooled", "1000", "--repeats", "2", "--services", "100", "--outage-seconds", "4"]
    )
    flush, outage = result["flush"], result["outage"]
    assert flush["drained_events"] == 1_000 + 3 * 50
    assert flush["new_failed_flush_seconds"] > 0 and flush["old_full_reread_seconds"] > 0
    assert outage["ticks"] == 2 and outage["spooled_at_end"] > 0
    assert len(_summary(result)) == 2


@pytest.mark.anyio
async def test_customers_read_only_the_changed_rows(tmp_path: Path, bench_pg: str) -> None:
    """Benchmark 11, 300 customers: Jarvis's table (SQLite) and the product's (PostgreSQL)."""
    customers = load_bench("customers")
    table = await customers._measure(f"sqlite+aiosqlite:///{tmp_path}/c.db", 300, 2, 10, 1)
    product = await customers._from_product(300, 2, 10)
    assert table["first_rows_read"] == 300 and table["rows_read_median"] == 10
    assert product["first_rows_read"] == 300 and 10 <= product["rows_read_median"] <= 20


@pytest.mark.anyio
async def test_shards_time_a_tick_on_the_whole_fleet_and_on_one_shard() -> None:
    """Benchmark 12's tick at 400 resources: the whole fleet's and one shard's, both timed."""
    shards = load_bench("shards")
    whole = await shards._tick_seconds(400, None, 2, 1)
    quarter = await shards._tick_seconds(400, 4, 2, 1)
    assert min(*whole, *quarter) > 0


def test_webhooks_time_deliveries_and_the_dunning_policy(scratch_results: Path) -> None:
    """Benchmark 13, 10 deliveries and 2,000 customers: each figure is a time."""
    result = load_bench("webhooks").run(["--deliveries", "10", "--customers", "2000"])
    hooks, policies = result["webhooks"], result["policies"]
    assert hooks["delivery_median_ms"] > 0 and hooks["healthz_median_ms"] > 0
    assert policies["dunning_ms"] > 0 and policies["onboarding_ms"] > 0
    assert len(_summary(result)) == 2


def test_dns_failover_times_the_policy_that_proposes(scratch_results: Path) -> None:
    """Benchmark 14: the policy proposes for the failing half of the groups."""
    result = load_bench("dns_failover").run(["--repeat", "3"])
    assert [case["proposals"] for case in result["cases"]] == [1, 5, 50]
    assert all(case["failover_ms"] > 0 for case in result["cases"])
    assert len(_summary(result)) == 1


def test_simulated_customers_cost_a_run_beside_one_without(scratch_results: Path) -> None:
    """Benchmark 15 over 0.05 days: customers signed up in one run, both runs timed."""
    result = load_bench("sim_customers").run(
        ["--days", "0.05", "--services", "5", "--customers", "20"]
    )
    assert result["invariants_ok"] and result["customers_report"]["sign_ups"] > 0
    assert result["plain_wall_seconds"] > 0 and result["with_customers_wall_seconds"] > 0
    (row,) = _summary(result)
    assert not row["measured"].startswith("0 s / 0 s"), row["measured"]
