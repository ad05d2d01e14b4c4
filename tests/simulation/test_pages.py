"""The simulation counts pages per incident: a human is woken once per cause, not per service."""

from __future__ import annotations

from pathlib import Path

import pytest

from jarvis.simulation import FaultKind, SimulationConfig, run_simulation, simulation_settings

pytestmark = pytest.mark.anyio


async def test_pages_never_outnumber_the_escalations_that_needed_a_human(tmp_path: Path) -> None:
    """Escalations page, grouped by cause and provider: at least one page, never more than them."""
    settings = simulation_settings(spool_path=tmp_path / "spool.jsonl")
    config = SimulationConfig(
        seed=3,
        days=6 / 24,
        services=20,
        faults=(FaultKind.CRASH, FaultKind.NEVER_RECOVERS),
        intensity=40,
    )
    report = await run_simulation(settings, config)
    assert report.ok, [v.as_dict() for v in report.violations]
    pages = report.notifications
    escalations = report.actions["escalations"]
    assert pages["escalations"] == escalations
    assert escalations >= 1
    assert 1 <= pages["by_cause"]["escalated"] <= escalations
    assert pages["pages"] <= escalations
