"""The seeded fault plan and the fleet's fault hooks for bad deploys and repairs."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from jarvis.actuators.sim import SimulatedFleet
from jarvis.model import Action, Health, ResourceRef, Restart, Rollback
from jarvis.simulation import (
    ALL_FAULTS,
    DEFAULT_FAULTS,
    PROCESS_FAULTS,
    FaultKind,
    SimulationConfig,
    parse_faults,
    plan_faults,
)

START = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
NAMES = [f"svc-{i}" for i in range(10)]


def test_the_same_seed_plans_the_same_faults() -> None:
    """Two plans from one seed are identical; another seed differs."""
    one = plan_faults(seed=4, start=START, days=10, services=NAMES, kinds=ALL_FAULTS)
    two = plan_faults(seed=4, start=START, days=10, services=NAMES, kinds=ALL_FAULTS)
    other = plan_faults(seed=5, start=START, days=10, services=NAMES, kinds=ALL_FAULTS)
    assert one == two
    assert one != other
    assert {fault.kind for fault in one} == set(ALL_FAULTS)


def test_turning_a_fault_off_leaves_the_others_where_they_were() -> None:
    """Each kind draws from its own stream, so a subset is a filter of the full plan."""
    full = plan_faults(seed=9, start=START, days=5, services=NAMES, kinds=ALL_FAULTS)
    some = plan_faults(
        seed=9, start=START, days=5, services=NAMES, kinds=(FaultKind.CRASH, FaultKind.OUTAGE)
    )
    assert some == [f for f in full if f.kind in {FaultKind.CRASH, FaultKind.OUTAGE}]


def test_intensity_multiplies_the_number_of_faults() -> None:
    """Ten times the intensity gives several times the faults in the same span."""
    base = plan_faults(seed=2, start=START, days=2, services=NAMES, kinds=ALL_FAULTS)
    dense = plan_faults(seed=2, start=START, days=2, services=NAMES, kinds=ALL_FAULTS, intensity=10)
    assert len(dense) > 5 * len(base)
    assert all(START <= fault.at < START.replace(day=7) for fault in dense)


def test_fault_lists_parse_and_unknown_names_are_refused() -> None:
    """all, none and comma lists parse; a typo names itself."""
    assert parse_faults("all") == ALL_FAULTS
    assert parse_faults("default") == DEFAULT_FAULTS
    assert parse_faults("none") == ()
    assert parse_faults("redis_restart,second_process") == (
        FaultKind.REDIS_RESTART,
        FaultKind.SECOND_PROCESS,
    )
    assert parse_faults("crash, outage,crash") == (FaultKind.CRASH, FaultKind.OUTAGE)
    with pytest.raises(ValueError, match="'crsh'"):
        parse_faults("crash,crsh")


def test_process_faults_strike_only_when_named_or_with_all() -> None:
    """A run's default faults leave out the process faults; ``all`` has every kind."""
    assert set(PROCESS_FAULTS) == {
        FaultKind.CRASH_IN_OUTAGE,
        FaultKind.REDIS_RESTART,
        FaultKind.SECOND_PROCESS,
    }
    assert SimulationConfig().faults == DEFAULT_FAULTS
    assert not set(DEFAULT_FAULTS) & PROCESS_FAULTS
    assert set(ALL_FAULTS) == set(DEFAULT_FAULTS) | PROCESS_FAULTS


def test_a_bad_deploy_crash_loops_until_rolled_back() -> None:
    """Restarts of a bad version fail; rolling back to the good version heals the service."""
    fleet = SimulatedFleet(seed=1, services=3, script=False, start=START)
    name = fleet.names[0]
    ref = ResourceRef("sim", name)
    version = fleet.bad_deploy(name)
    assert fleet.state(name).health is Health.UNHEALTHY
    assert not fleet.apply(Action(ref, Restart(), "test", "heal")).ok
    rolled = fleet.apply(Action(ref, Rollback("v1"), "test", "undo"))
    assert rolled.ok
    fleet.advance(START)
    state = fleet.state(name)
    assert (state.health, state.version) == (Health.HEALTHY, "v1")
    assert version == "v2"


def test_an_operator_repair_mends_the_cause_but_leaves_the_restart_to_jarvis() -> None:
    """After repair a broken service still needs a restart, which now succeeds."""
    fleet = SimulatedFleet(seed=1, services=3, script=False, start=START)
    name = fleet.names[1]
    ref = ResourceRef("sim", name)
    fleet.crash(name)
    fleet.break_permanently(name)
    assert not fleet.apply(Action(ref, Restart(), "test", "heal")).ok
    fleet.repair(name)
    assert fleet.state(name).health is Health.UNHEALTHY
    assert fleet.apply(Action(ref, Restart(), "test", "heal")).ok
    fleet.advance(START)
    assert fleet.state(name).health is Health.HEALTHY


def test_an_operator_repair_rolls_a_bad_deploy_back() -> None:
    """Repairing a service that runs a bad version brings back the last good one."""
    fleet = SimulatedFleet(seed=1, services=3, script=False, start=START)
    name = fleet.names[2]
    fleet.bad_deploy(name)
    fleet.repair(name)
    fleet.advance(START)
    state = fleet.state(name)
    assert (state.health, state.version) == (Health.HEALTHY, "v1")
