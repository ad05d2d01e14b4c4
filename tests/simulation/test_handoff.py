"""The simulation's split of who mended what, under provider-wide faults and unfixable ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from jarvis.simulation import SimulationConfig, run_simulation, simulation_settings
from jarvis.simulation.faults import FaultKind
from jarvis.simulation.report import SimulationReport

pytestmark = pytest.mark.anyio


async def simulate(tmp_path: Path, config: SimulationConfig) -> SimulationReport:
    settings = simulation_settings(spool_path=tmp_path / "spool.jsonl")
    return await run_simulation(settings, config)


async def test_provider_wide_faults_trip_breakers_and_page_nobody(tmp_path: Path) -> None:
    """Throttling, API errors and outages under load: breakers trip and close, no escalation."""
    faults = (FaultKind.THROTTLING, FaultKind.API_ERRORS, FaultKind.OUTAGE, FaultKind.SPIKE)
    config = SimulationConfig(seed=3, days=6 / 24, services=20, faults=faults, intensity=20)
    report = await simulate(tmp_path, config)
    assert report.ok, [v.as_dict() for v in report.violations]
    alerts = report.handoff["breaker_alerts"]
    assert alerts.get("provider tripped", 0) > 0
    assert report.actions["blocked_by_reason"].get("provider_degraded", 0) > 0
    assert report.actions["escalations"] == 0, report.actions["escalated"]
    assert report.handoff["escalations_by_cause"] == {}


async def test_an_unfixable_service_is_escalated_with_its_cause(tmp_path: Path) -> None:
    """A service that never recovers is the one reason a human is paged, and says so."""
    config = SimulationConfig(
        seed=5, days=4 / 24, services=6, faults=(FaultKind.NEVER_RECOVERS,), intensity=100
    )
    report = await simulate(tmp_path, config)
    assert report.ok, [v.as_dict() for v in report.violations]
    causes = report.handoff["escalations_by_cause"]
    assert set(causes) == {"never_recovers"}
    assert causes["never_recovers"]["count"] == report.actions["escalations"]
    assert report.handoff["mended_after_operator"]["never_recovers"] > 0
