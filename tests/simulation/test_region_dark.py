"""The ``region_dark`` fault: two DNS regions, the failover policy, the ``failover`` invariant."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from jarvis.model import (
    Action,
    Health,
    History,
    ResourceRef,
    SetDnsWeights,
    Snapshot,
)
from jarvis.policies.base import Evaluation
from jarvis.simulation import SimulationConfig, run_simulation, simulation_settings
from jarvis.simulation.dns import REGIONS, URI, endpoint_name
from jarvis.simulation.faults import ALL_FAULTS, DEFAULT_FAULTS, FaultKind, parse_faults
from jarvis.simulation.invariant_failover import dns_write_problem

pytestmark = pytest.mark.anyio


def test_region_dark_strikes_only_when_named() -> None:
    """Neither the default faults nor ``all`` include it: the pinned records stay."""
    assert FaultKind.REGION_DARK not in DEFAULT_FAULTS
    assert FaultKind.REGION_DARK not in ALL_FAULTS
    assert parse_faults("region_dark") == (FaultKind.REGION_DARK,)


def test_a_write_is_judged_against_the_regions_truth() -> None:
    """Raising a dark region, starving the lit one, or a step too far: each is named."""
    dark = frozenset({"region-a"})
    before = {"region-a": 100, "region-b": 100}

    def problem(**after: int) -> str | None:
        return dns_write_problem(SetDnsWeights(after), before, dark, 64)

    assert problem(**{"region-a": 36, "region-b": 100}) is None
    assert "raised on dark region-a" in str(problem(**{"region-a": 110, "region-b": 100}))
    assert "while region-b was up" in str(problem(**{"region-a": 100, "region-b": 0}))
    assert "more than 64" in str(problem(**{"region-a": 0, "region-b": 100}))
    assert "every weight set to 0" in str(problem(**{"region-a": 0, "region-b": 0}))


async def test_regions_go_dark_and_every_write_keeps_the_invariant(tmp_path: Path) -> None:
    """Over a simulated day the policy moves weight away and back; no write breaks ``failover``."""
    settings = simulation_settings(spool_path=tmp_path / "spool.jsonl")
    config = SimulationConfig(
        seed=3, days=1.0, services=3, faults=(FaultKind.REGION_DARK, FaultKind.THROTTLING)
    )
    report = await run_simulation(settings, config)
    assert report.ok, [v.as_dict() for v in report.violations]
    assert report.faults_injected["region_dark"] >= 3
    assert report.checks["failover"] >= 3
    assert "failover" in report.policies
    applied = report.actions["actions"]["set_dns_weights"]["applied"]
    # Every write the provider received was judged, the throttled ones included.
    assert 0 < applied <= report.checks["failover"]


class TowardTheDark:
    """A broken policy: moves weight toward whichever region's endpoint is failing."""

    name = "toward-the-dark"

    def evaluate(self, snapshot: Snapshot, history: History, now: datetime) -> Evaluation:
        record = snapshot.get(URI)
        if record is None or record.dns_weights is None:
            return Evaluation()
        weights = dict(record.dns_weights.weights)
        for region in REGIONS:
            endpoint = snapshot.get(f"endpoint://{endpoint_name(region)}")
            if endpoint is not None and endpoint.health is Health.UNHEALTHY:
                weights[region] = min(255, weights[region] + 10)
        if weights == record.dns_weights.weights:
            return Evaluation()
        action = Action(ResourceRef.parse(URI, "dns_record"), SetDnsWeights(weights), self.name, "")
        return Evaluation(actions=(action,))


async def test_the_invariant_catches_weight_moved_toward_a_dark_region(tmp_path: Path) -> None:
    """With a policy that feeds the dark region, the run ends on a ``failover`` violation."""
    settings = simulation_settings(spool_path=tmp_path / "spool.jsonl")
    config = SimulationConfig(seed=3, days=1.0, services=3, faults=(FaultKind.REGION_DARK,))
    report = await run_simulation(settings, config, policies=[TowardTheDark()])
    assert not report.ok
    assert {v.invariant for v in report.violations} == {"failover"}
    assert "raised on dark" in report.violations[0].message
