"""The event database and the kill switch's Redis going away in the middle of a run.

The simulation's in-memory database and kill switch can be switched off; the
daemon's promises are then that nothing is lost (events wait in the spool and
land later) and that nothing is applied while the switch cannot be read.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from jarvis.model import Scale
from jarvis.simulation import (
    FaultKind,
    InvariantChecker,
    ProviderCall,
    SimulationConfig,
    SimulationReport,
    run_simulation,
    simulation_settings,
)
from tests.simulation.test_invariants import RULES, T0, Record, apply_call

pytestmark = pytest.mark.anyio


async def simulate(tmp_path: Path, config: SimulationConfig) -> SimulationReport:
    settings = simulation_settings(spool_path=tmp_path / "spool.jsonl")
    return await run_simulation(settings, config)


async def test_a_database_outage_spools_events_and_loses_none(tmp_path: Path) -> None:
    """Events spooled while the database is away land later; every invariant holds."""
    kinds = (FaultKind.DATABASE_OUTAGE, FaultKind.CRASH)
    report = await simulate(
        tmp_path, SimulationConfig(seed=4, days=4 / 24, services=8, faults=kinds, intensity=40)
    )
    assert report.ok, [v.as_dict() for v in report.violations]
    assert report.faults_injected["database_outage"] > 0
    assert report.store["events_spooled"] > 0
    # Every intent was checked for its one outcome once the spool was replayed.
    started = sum(row.get("started", 0) for row in report.actions["actions"].values())
    assert started > 0
    assert report.checks["one_outcome"] == started


async def test_a_redis_outage_blocks_every_action_until_it_is_back(tmp_path: Path) -> None:
    """While the kill switch cannot be read, actions are blocked (fail-safe), then resume."""
    kinds = (FaultKind.REDIS_OUTAGE, FaultKind.CRASH)
    report = await simulate(
        tmp_path, SimulationConfig(seed=4, days=4 / 24, services=8, faults=kinds, intensity=40)
    )
    assert report.ok, [v.as_dict() for v in report.violations]
    assert report.faults_injected["redis_outage"] > 0
    assert report.actions["blocked_by_reason"].get("killswitch", 0) > 0
    assert report.actions["actions"]["restart"].get("applied", 0) > 0


async def test_a_database_outage_is_not_injected_into_a_real_database(tmp_path: Path) -> None:
    """A run on SQLite cannot take its database away, and does not claim it did."""
    config = SimulationConfig(
        seed=4,
        days=1 / 24,
        services=4,
        faults=(FaultKind.DATABASE_OUTAGE,),
        intensity=200,
        database_url=f"sqlite+aiosqlite:///{tmp_path}/run.db",
    )
    report = await simulate(tmp_path, config)
    assert report.ok
    assert report.faults_injected == {}
    assert report.store["events_spooled"] == 0


def test_an_apply_while_the_switch_is_unreadable_is_caught() -> None:
    """The witness treats an unreadable kill switch as engaged."""
    checker = InvariantChecker(RULES)
    checker.feed_events(Record().start().outcome().events)
    checker.feed_calls([ProviderCall(0, T0, "switch_down"), apply_call(1)])
    checker.end_tick("t1", [])
    assert [v.invariant for v in checker.violations] == ["killswitch"]
    assert "unreadable" in checker.violations[0].message


def test_an_apply_after_the_switch_is_back_is_fine() -> None:
    """Once the switch's store answers again, applies are allowed."""
    checker = InvariantChecker(RULES)
    checker.feed_events(Record().start().outcome().events)
    down, up = ProviderCall(0, T0, "switch_down"), ProviderCall(1, T0, "switch_up")
    checker.feed_calls([down, up, apply_call(2)])
    checker.end_tick("t1", [])
    assert checker.violations == []


def test_an_unsettled_record_is_checked_once_the_spool_lands() -> None:
    """Calls made while events wait in the spool are matched with them after the replay."""
    checker = InvariantChecker(RULES)
    checker.feed_calls([apply_call(0), apply_call(1, "sim://web", Scale())])
    checker.end_tick("t1", [], settled=False)
    checker.end_tick("t2", [], settled=False)
    assert checker.violations == []
    replayed = Record().start().outcome()
    replayed.start("sim://web", "scale", tick="t2").outcome("sim://web", "scale", tick="t2")
    checker.feed_events(replayed.events)
    checker.end_tick("t3", [])
    assert checker.violations == []


def test_a_settled_record_missing_an_intent_is_still_caught() -> None:
    """Deferring the check does not excuse a provider call that never gets an intent."""
    checker = InvariantChecker(RULES)
    checker.feed_calls([apply_call(0)])
    checker.end_tick("t1", [], settled=False)
    checker.end_tick("t2", [])
    assert [v.invariant for v in checker.violations] == ["witness"]
