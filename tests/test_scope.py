"""Shard-scoped observation on the simulated fleet, and what the reconciler counts as the fleet."""

from __future__ import annotations

from pathlib import Path

import pytest

from jarvis.actuators.base import Scope
from jarvis.actuators.sim import SimulatedActuator
from jarvis.app import build_app
from jarvis.config import Settings
from jarvis.config.budgets import BudgetEntry
from jarvis.loop.clock import VirtualClock
from jarvis.loop.shards import owner, shard_of
from jarvis.simulation import simulation_settings
from jarvis.store import EventStore, MemoryKillSwitch

pytestmark = pytest.mark.anyio


def owned(uri: str) -> bool:
    return shard_of(uri, 4) == 0


async def test_a_scoped_simulated_observe_builds_only_owned_states() -> None:
    """Owned services come back as states; every other one is named, none is lost."""
    actuator = SimulatedActuator.create(VirtualClock(), seed=1, services=200, script=False)
    everything = {str(s.ref) for s in await actuator.observe()}

    scope = Scope(owned)
    states = await actuator.observe(scope)

    kept = {str(s.ref) for s in states}
    assert kept == {uri for uri in everything if owned(uri)}
    assert {str(ref) for ref in scope.others} == everything - kept
    assert 0 < len(kept) < len(everything)


def _settings(tmp_path: Path) -> Settings:
    settings = simulation_settings(spool_path=tmp_path / "spool.jsonl")
    budget = BudgetEntry(name="half", provider="sim", max_percent=50)
    return settings.model_copy(update={"budgets": [budget]})


async def test_a_replica_with_some_shards_still_counts_the_whole_fleet(tmp_path: Path) -> None:
    """A percentage budget is of the whole fleet, though only the owned part is observed."""
    clock = VirtualClock()
    actuator = SimulatedActuator.create(clock, seed=1, services=200, script=False)
    app = await build_app(
        _settings(tmp_path),
        clock=clock,
        actuators=[actuator],
        run_id="scope",
        store=await EventStore.in_memory(),
        switch=MemoryKillSwitch(),
    )
    try:
        app.reconciler.owns = owned
        report = await app.reconciler.tick()
        assert report.snapshot.resources
        assert all(owned(uri) for uri in report.snapshot.resources)
        assert {r.limit for r in app.reconciler.budgets_remaining} == {100}
    finally:
        await app.aclose()


def test_the_remembered_owner_answers_as_the_hash_does() -> None:
    """`owner` remembers answers per URI; each is the shard hash's, asked once or twice."""
    owns = owner(4, [0, 2])
    uris = [f"sim://svc-{index:05d}" for index in range(1000)]
    expected = [shard_of(uri, 4) in {0, 2} for uri in uris]

    assert [owns(uri) for uri in uris] == expected
    assert [owns(uri) for uri in reversed(uris)] == expected[::-1]
