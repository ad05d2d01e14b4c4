"""Replica faults in the simulation: three replicas, one lease, and fencing in virtual time.

The replicas elect through the real `Elector` on the in-memory lease table;
a paused leader wakes and ticks on its old belief, and its first fenced write
must be refused. The ``stale_epoch`` invariant reads the record.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from jarvis.model import Action, ResourceRef, Restart, Snapshot
from jarvis.policies.base import Evaluation
from jarvis.simulation import (
    ALL_FAULTS,
    SimulationConfig,
    parse_faults,
    run_simulation,
    simulation_settings,
)
from jarvis.simulation.faults import REPLICA_FAULTS
from jarvis.simulation.run_config import START

pytestmark = pytest.mark.anyio

SERVICES = 50


class RestartOnePerTick:
    """Proposes a restart every tick, on each service in turn, so every tick writes an intent.

    With 50 services a service's turn comes every 25 minutes: at most three
    attempts an hour, the retry budget's limit, so none is blocked.
    """

    name = "restart_one_per_tick"

    def evaluate(self, snapshot: Snapshot, history: object, now: datetime) -> Evaluation:
        services = sorted(uri for uri in snapshot.resources if uri.startswith("sim://"))
        if not services:
            return Evaluation()
        uri = services[int((now - START).total_seconds() // 30) % len(services)]
        action = Action(ResourceRef.parse(uri), Restart(), self.name, "every tick acts")
        return Evaluation(actions=(action,))


def test_all_leaves_out_the_replica_faults_until_named() -> None:
    assert not REPLICA_FAULTS.intersection(parse_faults("all"))
    assert parse_faults("all") == ALL_FAULTS
    assert parse_faults("leader_pause") == tuple(REPLICA_FAULTS & {*parse_faults("leader_pause")})


async def test_replica_faults_move_the_lead_and_a_woken_leader_applies_nothing(
    tmp_path: Path,
) -> None:
    settings = simulation_settings(spool_path=tmp_path / "spool.jsonl")
    config = SimulationConfig(
        seed=5,
        days=0.5,
        services=SERVICES,
        faults=parse_faults("leader_crash,leader_pause,replica_partition"),
        intensity=10,
    )
    report = await run_simulation(settings, config, policies=[RestartOnePerTick()])
    assert report.ok, [v.as_dict() for v in report.violations]
    injected = report.faults_injected
    assert {kind.value for kind in REPLICA_FAULTS} <= set(injected), injected
    replicas = report.replicas
    assert replicas is not None
    assert replicas["replicas"] == 3
    assert replicas["elections"] > sum(injected.values()) // 2
    # Every pause woke a leader that ticked once believing it still led; every
    # such tick proposed a restart, and the fence refused its intent.
    assert replicas["stale_ticks"] == injected["leader_pause"]
    assert replicas["refused_writes"] >= replicas["stale_ticks"]
    assert report.checks["stale_epoch"] > 0
    assert report.as_dict()["invariants"]["stale_epoch"]["violations"] == 0


async def test_without_the_fence_a_woken_leader_acts_and_stale_epoch_catches_it(
    tmp_path: Path,
) -> None:
    """The invariant has teeth: the same faults, the fence off, and the record shows it."""
    settings = simulation_settings(spool_path=tmp_path / "spool.jsonl")
    config = SimulationConfig(
        seed=5,
        days=0.5,
        services=SERVICES,
        faults=parse_faults("leader_pause"),
        intensity=10,
        fencing=False,
    )
    report = await run_simulation(settings, config, policies=[RestartOnePerTick()])
    assert not report.ok
    assert {v.invariant for v in report.violations} == {"stale_epoch"}
    assert "after epoch" in report.violations[0].message
    assert report.replicas is not None
    assert report.replicas["refused_writes"] == 0


async def test_a_run_without_replica_faults_has_one_replica(tmp_path: Path) -> None:
    settings = simulation_settings(spool_path=tmp_path / "spool.jsonl")
    config = SimulationConfig(seed=2, days=600 / 86_400, services=3)
    report = await run_simulation(settings, config)
    assert report.ok
    assert report.replicas is None
    assert "replicas" not in report.as_dict()


async def test_a_release_through_a_partitioned_replica_never_precedes_its_record(
    tmp_path: Path,
) -> None:
    """The operator's release cut off from the database waits: no action is recorded under it.

    Found by a seed sweep: the release went through the partitioned replica,
    took effect at once, and its event was written after the new leader's
    next intent, so the record showed an action started while engaged.
    """
    settings = simulation_settings(spool_path=tmp_path / "spool.jsonl", customers=True)
    config = SimulationConfig(
        seed=2004,
        days=1.5,
        services=15,
        customers=60,
        faults=parse_faults("killswitch,leader_pause,replica_partition"),
    )
    report = await run_simulation(settings, config)
    assert report.ok, [v.as_dict() for v in report.violations]
    assert report.checks["killswitch"] > 0
