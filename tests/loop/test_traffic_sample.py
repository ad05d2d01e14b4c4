"""The loop's hourly traffic sample: one `metrics.sampled` per hour boundary, fleet-wide."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jarvis.loop.record import HISTORY_KINDS, Recorder
from jarvis.model import EventKind, Health, ResourceRef, ResourceState
from jarvis.store import EventStore
from jarvis.store.history import StoreHistory
from jarvis.telemetry.metrics import Metrics

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 3, 10, 9, 50, tzinfo=UTC)


def state(name: str, now: datetime, **metrics: float) -> ResourceState:
    return ResourceState(ResourceRef("sim", name), Health.HEALTHY, now, metrics=metrics)


def fleet(now: datetime, rpm: float) -> dict[str, ResourceState]:
    """``api`` reports traffic, ``db`` only CPU: only ``api`` is sampled."""
    return {
        "sim://api": state("api", now, requests_per_minute=rpm, cpu_utilization=40.0),
        "sim://db": state("db", now, cpu_utilization=10.0),
    }


async def test_one_sample_per_hour_boundary_with_each_resources_rate() -> None:
    """Ticks every 10 min from 09:50 to 12:00: samples at 09:50, 10:00, 11:00 and 12:00 only."""
    store = await EventStore.in_memory()
    try:
        recorder = Recorder(store, StoreHistory(store, kinds=HISTORY_KINDS, size=10), Metrics())
        for i in range(14):
            now = T0 + timedelta(minutes=10 * i)
            recorder.sample(f"t{i}", now, fleet(now, rpm=100 + i + 0.04))
        await store.flush()
        samples = await store.events_by_time(kinds=[EventKind.METRICS_SAMPLED])
    finally:
        await store.aclose()
    assert [(e.ts.strftime("%H:%M"), e.resource, e.payload) for e in samples] == [
        ("09:50", None, {"requests_per_minute": {"sim://api": 100.0}}),
        ("10:00", None, {"requests_per_minute": {"sim://api": 101.0}}),
        ("11:00", None, {"requests_per_minute": {"sim://api": 107.0}}),
        ("12:00", None, {"requests_per_minute": {"sim://api": 113.0}}),
    ]


async def test_an_hour_without_traffic_is_sampled_when_traffic_appears() -> None:
    """No resource reports a rate at 10:00: nothing then; the 10:20 tick that has one samples."""
    store = await EventStore.in_memory()
    try:
        recorder = Recorder(store, StoreHistory(store, kinds=HISTORY_KINDS, size=10), Metrics())
        ten = T0 + timedelta(minutes=10)
        recorder.sample("a", ten, {"sim://db": state("db", ten, cpu_utilization=1.0)})
        later = ten + timedelta(minutes=20)
        recorder.sample("b", later, fleet(later, rpm=12.345))
        recorder.sample("c", later + timedelta(minutes=5), fleet(later, rpm=50.0))
        await store.flush()
        samples = await store.events_by_time(kinds=[EventKind.METRICS_SAMPLED])
    finally:
        await store.aclose()
    assert [(e.tick_id, e.payload["requests_per_minute"]) for e in samples] == [
        ("b", {"sim://api": 12.3})
    ]
