"""`jarvis simulate` as an operator runs it: a real subprocess, its report and exit status."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from jarvis.simulation.invariant_records import CUSTOMER_INVARIANTS
from tests.cli.conftest import jarvis_argv, jarvis_env


def simulate(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        jarvis_argv("simulate", *args),
        cwd=tmp_path,
        env=jarvis_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )


def test_simulate_writes_a_json_report_and_exits_0(tmp_path: Path) -> None:
    """A short run prints its report as JSON, writes the same to --report, and exits 0."""
    result = simulate(
        tmp_path,
        "--days",
        "0.02",
        "--services",
        "4",
        "--seed",
        "2",
        "--json",
        "--report",
        "out/report.json",
    )
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    written = json.loads((tmp_path / "out" / "report.json").read_text())
    assert printed == written
    assert printed["ok"] is True
    assert printed["seed"] == 2
    assert printed["ticks"] > 50
    assert set(printed["invariants"]) == {
        "killswitch",
        "retry_budget",
        "allowlist_bounds",
        "one_outcome",
        "witness",
        "capacity_bounds",
        "breakers",
        "stale_epoch",
        "restart",
        "second_process",
        "failover",
    }
    assert not (tmp_path / "jarvis.db").exists()


def test_simulate_prints_a_readable_summary(tmp_path: Path) -> None:
    """Without --json the summary names the seed and the verdict; no progress bar off a TTY."""
    result = simulate(tmp_path, "--days", "0.01", "--services", "3", "--faults", "crash")
    assert result.returncode == 0, result.stderr
    assert "seed 1" in result.stdout
    assert "all invariants held" in result.stdout
    assert "simulating" not in result.stdout


def test_an_unknown_fault_exits_2_naming_it(tmp_path: Path) -> None:
    """A typo in --faults is refused before anything runs."""
    result = simulate(tmp_path, "--faults", "crash,meteor")
    assert result.returncode == 2
    assert "'meteor'" in result.stderr


def test_replica_faults_run_three_replicas_and_say_so(tmp_path: Path) -> None:
    result = simulate(
        tmp_path, "--days", "0.05", "--services", "3", "--faults", "leader_crash,leader_pause"
    )
    assert result.returncode == 0, result.stderr
    assert "replicas: 3, elections:" in result.stdout
    assert "all invariants held" in result.stdout


def test_replica_faults_on_a_database_url_exit_2(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/sim.db"
    result = simulate(tmp_path, "--faults", "leader_pause", "--database-url", url)
    assert result.returncode == 2
    assert "in-memory store only" in result.stderr
    assert "Traceback" not in result.stderr


def test_simulate_with_customers_reports_them_and_their_invariants(tmp_path: Path) -> None:
    """--customers adds customers, emails by template and MRR, and the customer invariants."""
    result = simulate(
        tmp_path, "--days", "0.05", "--services", "2", "--customers", "6", "--seed", "3", "--json"
    )
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert printed["ok"] is True
    assert printed["customers"]["customers"] == 6
    assert {"onboarding", "dunning", "churn"} <= set(printed["policies"])
    assert set(CUSTOMER_INVARIANTS) <= set(printed["invariants"])
