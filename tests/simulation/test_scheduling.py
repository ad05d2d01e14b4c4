"""The simulation paces its ticks with the daemon's scheduler: overruns and timeouts count."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from jarvis.loop.clock import VirtualClock
from jarvis.policies.base import Evaluation
from jarvis.simulation import SimulationConfig, run_simulation, simulation_settings
from jarvis.simulation.run_config import START
from jarvis.store import EventStore

pytestmark = pytest.mark.anyio


class SlowThirdTick:
    """A policy whose third evaluation takes 70 s of virtual time, as a slow one takes real time."""

    name = "slow"

    def __init__(self, clock: VirtualClock) -> None:
        self.clock = clock
        self.calls = 0

    def evaluate(self, snapshot: object, history: object, now: datetime) -> Evaluation:
        self.calls += 1
        if self.calls == 3:
            self.clock.advance(70)
        return Evaluation()


async def test_a_tick_longer_than_the_interval_is_an_overrun_and_the_next_waits_for_a_boundary(
    tmp_path: Path,
) -> None:
    """A 70 s tick is counted as an overrun; the next tick starts on the next boundary ahead."""
    url = f"sqlite+aiosqlite:///{tmp_path}/paced.db"
    settings = simulation_settings(
        spool_path=tmp_path / "spool.jsonl", loop={"interval": 30, "jitter": 0}
    )
    config = SimulationConfig(seed=3, days=300 / 86_400, services=3, faults=(), database_url=url)
    clock = VirtualClock(START)
    report = await run_simulation(settings, config, policies=[SlowThirdTick(clock)], clock=clock)
    assert report.ok, [v.as_dict() for v in report.violations]
    assert report.scheduler == {"overruns": 1, "timed_out": 0}
    store = await EventStore.connect(url)
    try:
        started = await store.events(kinds=["tick.started"], limit=100)
    finally:
        await store.aclose()
    offsets = [(e.ts - START).total_seconds() for e in started]
    assert offsets == [0, 30, 60, 150, 180, 210, 240, 270]
    assert report.ticks == len(offsets)
    assert report.as_dict()["scheduler"]["overruns"] == 1


async def test_a_tick_timeout_in_a_simulation_is_counted_and_the_run_goes_on(
    tmp_path: Path,
) -> None:
    """Ticks cut short by the tick timeout are counted; the run still reaches its end."""
    # The timeout is real time: one this short cuts every tick at its first await.
    # The settings refuse a tick timeout shorter than an observe and an apply, so
    # those shrink with it.
    loop = {"interval": 30, "tick_timeout": 1e-9, "observe_timeout": 4e-10, "apply_timeout": 4e-10}
    settings = simulation_settings(spool_path=tmp_path / "spool.jsonl", loop=loop)
    config = SimulationConfig(seed=3, days=600 / 86_400, services=3)
    report = await run_simulation(settings, config)
    assert report.ok, [v.as_dict() for v in report.violations]
    assert report.ticks >= 19
    assert report.scheduler["timed_out"] == report.ticks
    assert report.simulated_seconds >= 600
