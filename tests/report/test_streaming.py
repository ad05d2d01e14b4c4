"""The day's report aggregates its events as they stream from the store, an hour at a time.

Before, the loader read the whole day into one list (about 0.7 GB at a million
events) and reduced it afterwards; the figures are the same either way.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from jarvis.loop.events import resource_changed
from jarvis.model import Event, EventKind, Health, ResourceRef, ResourceState
from jarvis.report import build_figures
from jarvis.report.load import REPORTED_KINDS, load_figures
from jarvis.store import EventStore

pytestmark = pytest.mark.anyio

DAY = datetime(2026, 3, 10, tzinfo=UTC)
PER_HOUR = 400


def _day() -> list[Event]:
    """A busy day: services flapping and restarts applied, every hour alike."""
    out: list[Event] = []
    for hour in range(24):
        for i in range(PER_HOUR // 2):
            at = DAY + timedelta(hours=hour, seconds=i * 8)
            ref = ResourceRef("sim", f"svc-{i % 50}")
            health, was = (
                (Health.UNHEALTHY, Health.HEALTHY)
                if i % 4 < 2
                else (
                    Health.HEALTHY,
                    Health.UNHEALTHY,
                )
            )
            state = ResourceState(ref, health, at, detail=f"{health.value} " + "x" * 200)
            previous = ResourceState(ref, was, at, detail=was.value)
            out.append(resource_changed(f"t{hour}-{i}", at, state, previous))
            out.append(
                Event(
                    EventKind.ACTION_APPLIED,
                    at + timedelta(seconds=1),
                    f"applied-{hour}-{i}",
                    resource=str(ref),
                    action_kind="restart",
                    reason="r" * 200,
                )
            )
    return out


async def _peak(read: Callable[[], Awaitable[Any]]) -> int:
    tracemalloc.start()
    try:
        await read()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


async def test_the_report_never_holds_the_whole_day(tmp_path: Path) -> None:
    """Its peak memory is a fraction of what the day's events take as one list."""
    day = _day()
    store = await EventStore.connect(f"sqlite+aiosqlite:///{tmp_path}/jarvis.db")
    try:
        store.append(day)
        await store.flush()
        end = DAY + timedelta(days=1) - timedelta(microseconds=1)
        whole = await _peak(
            lambda: store.events_by_time(kinds=REPORTED_KINDS, since=DAY, until=end)
        )
        report = await _peak(lambda: load_figures(store, DAY, 0.0))
        figures = await load_figures(store, DAY, 0.0)
    finally:
        await store.aclose()
    assert report < whole / 3, (report, whole)
    # The same figures as reducing the whole day at once.
    expected = build_figures(day, start=DAY)
    assert figures.actions == expected.actions
    assert figures.actions_per_hour == expected.actions_per_hour == [PER_HOUR // 2] * 24
    assert figures.incidents == expected.incidents
    assert len(figures.incidents) > 1000
