"""The process faults: Jarvis killed in a database outage, Redis restarted empty, a second process.

Each runs in the simulation, through the real start-up, kill switch and
one-shot commands, and each invariant is shown to catch what it guards
against from a hand-made record.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from jarvis.model import Event, EventKind
from jarvis.simulation import (
    FaultKind,
    InvariantChecker,
    ProviderCall,
    SimulationConfig,
    SimulationReport,
    run_simulation,
    simulation_settings,
)
from jarvis.store import MemoryKillSwitch
from tests.simulation.test_invariants import RULES, T0, Record, apply_call

pytestmark = pytest.mark.anyio


async def simulate(tmp_path: Path, config: SimulationConfig) -> SimulationReport:
    settings = simulation_settings(spool_path=tmp_path / "spool.jsonl")
    return await run_simulation(settings, config)


# -- in the simulation ------------------------------------------------------------


async def test_a_kill_in_a_database_outage_restarts_within_the_retry_limit(
    tmp_path: Path,
) -> None:
    """Killed while the database is away, Jarvis starts once it is back and keeps every limit."""
    kinds = (
        FaultKind.CRASH_IN_OUTAGE,
        FaultKind.NEVER_RECOVERS,
        FaultKind.BAD_DEPLOY,
        FaultKind.CRASH,
    )
    report = await simulate(
        tmp_path, SimulationConfig(seed=3, days=1, services=10, faults=kinds, intensity=20)
    )
    assert report.ok, [v.as_dict() for v in report.violations]
    assert report.faults_injected["crash_in_outage"] >= 2
    assert report.processes["restarts"] == report.faults_injected["crash_in_outage"]
    # Every start while the database was away was refused: the spool had to replay first.
    assert report.processes["failed_starts"] > 0
    assert report.checks["restart"] == report.processes["restarts"]
    assert report.checks["retry_budget"] > 0
    assert report.store["events_spooled"] > 0


async def test_redis_restarted_empty_keeps_an_engaged_switch_engaged(tmp_path: Path) -> None:
    """With its record lost, the switch is judged by its last flip: nothing applies till release."""
    kinds = (FaultKind.KILLSWITCH, FaultKind.REDIS_RESTART, FaultKind.CRASH, FaultKind.THROTTLING)
    report = await simulate(
        tmp_path, SimulationConfig(seed=1, days=1, services=10, faults=kinds, intensity=8)
    )
    assert report.ok, [v.as_dict() for v in report.violations]
    assert report.processes["redis_restarts"] == report.faults_injected["redis_restart"] > 0
    # Ticks ran while Redis was empty and the switch engaged; the killswitch invariant held.
    assert report.checks["killswitch.redis_restart"] > 0
    assert report.actions["blocked_by_reason"].get("killswitch", 0) > 0


async def test_a_second_process_beside_the_daemon_applies_and_writes_nothing(
    tmp_path: Path,
) -> None:
    """One-shot plans and dry-run ticks beside the daemon act on nothing; plan records nothing."""
    kinds = (FaultKind.SECOND_PROCESS, FaultKind.CRASH, FaultKind.NEVER_RECOVERS, FaultKind.SPIKE)
    report = await simulate(
        tmp_path, SimulationConfig(seed=2, days=1, services=10, faults=kinds, intensity=30)
    )
    assert report.ok, [v.as_dict() for v in report.violations]
    shots = report.processes["one_shots"]
    assert shots["plan"] > 0
    assert shots["tick"] > 0
    assert report.checks["second_process"] == sum(shots.values())


async def test_process_faults_needing_the_memory_database_are_not_claimed_on_sqlite(
    tmp_path: Path,
) -> None:
    """On a real database a kill in an outage or a second process is not injected, nor counted."""
    config = SimulationConfig(
        seed=4,
        days=1 / 24,
        services=4,
        faults=(FaultKind.CRASH_IN_OUTAGE, FaultKind.SECOND_PROCESS),
        intensity=200,
        database_url=f"sqlite+aiosqlite:///{tmp_path}/run.db",
    )
    report = await simulate(tmp_path, config)
    assert report.ok
    assert report.faults_injected == {}
    assert report.processes == {}


# -- the invariants' teeth --------------------------------------------------------


def test_an_apply_after_redis_restarted_empty_under_an_engaged_switch_is_caught() -> None:
    """Losing the record does not release: the witness stays engaged until the release."""
    checker = InvariantChecker(RULES)
    checker.feed_events(Record().start().outcome().events)
    calls = [ProviderCall(0, T0, "engage"), ProviderCall(1, T0, "switch_wiped"), apply_call(2)]
    checker.feed_calls(calls)
    checker.end_tick("t1", [])
    assert [v.invariant for v in checker.violations] == ["killswitch"]
    assert "restarted empty" in checker.violations[0].message
    assert checker.checks["killswitch.redis_restart"] == 1


def test_the_release_after_a_redis_restart_lets_actions_through() -> None:
    """The operator's release writes a record again: applies after it are fine."""
    checker = InvariantChecker(RULES)
    checker.feed_events(Record().start().outcome().events)
    flips = [ProviderCall(0, T0, "engage"), ProviderCall(1, T0, "switch_wiped")]
    checker.feed_calls([*flips, ProviderCall(2, T0, "release"), apply_call(3)])
    checker.end_tick("t1", [])
    assert checker.violations == []


def test_an_action_recorded_or_applied_by_a_one_shot_is_caught() -> None:
    """Intents under a one-shot's tick id, its provider calls, and a plan's writes are caught."""
    checker = InvariantChecker(RULES)
    checker.processes.one_shot_runs.add("sim1-tick1")
    tick = "20260105T080000.000Z-sim1-tick1"
    checker.feed_events(Record().start(tick=tick).outcome(tick=tick).events)
    checker.processes.one_shot_done("sim1-tick1", [apply_call(0)], wrote=0)
    checker.processes.one_shot_done("sim1-plan2", [], wrote=3)
    checker.end_tick("t1", [], settled=False)
    messages = [v.message for v in checker.violations if v.invariant == "second_process"]
    assert len(messages) == 4  # started, applied, the provider call, the plan's writes
    assert any("wrote 3 events" in m for m in messages)
    assert checker.checks["second_process"] == 2


def test_an_intent_left_open_after_a_restart_is_caught() -> None:
    """The restarted daemon must close every orphan before its first settled tick ends."""
    checker = InvariantChecker(RULES)
    checker.processes.awaiting_restart = True
    orphan = Event(
        kind=EventKind.ACTION_STARTED,
        ts=T0,
        idempotency_key="k1",
        resource="sim://api",
        action_kind="restart",
        action_id="t0:sim://api:restart",
    )
    checker.processes.open_after_restart([orphan])
    checker.end_tick("t1", [])
    assert [v.invariant for v in checker.violations] == ["restart"]
    assert not checker.processes.awaiting_restart


async def test_a_redis_restarted_empty_reads_as_no_record() -> None:
    """The simulated Redis loses its record as a restarted Redis without persistence does."""
    switch = MemoryKillSwitch()
    assert await switch.read() is not None
    switch.restart_empty()
    assert await switch.read() is None
