"""An incident open at midnight (UTC) and mended the next day is in that day's report.

Before, the day's report read only the day's events: the recovery found no
incident open and was dropped, so the incident was counted in neither day
(open in the first, missing from the second) and its time to remediate never
reached the median or the 95th percentile.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from jarvis.loop.events import resource_changed
from jarvis.model import Event, EventKind, Health, ResourceRef, ResourceState
from jarvis.report.load import load_figures
from jarvis.report.markdown import markdown
from jarvis.store import EventStore

pytestmark = pytest.mark.anyio

DAY = datetime(2026, 3, 10, tzinfo=UTC)


def change(at: datetime, name: str, health: Health, was: Health | None) -> Event:
    """A `resource.changed` as the loop writes it (`previous` included)."""
    ref = ResourceRef("sim", name)
    state = ResourceState(ref, health, at, detail=health.value)
    previous = None if was is None else ResourceState(ref, was, at, detail=was.value)
    return resource_changed(f"{at:%H%M%S}-{name}", at, state, previous)


async def test_an_incident_open_at_midnight_is_in_the_report_of_the_day_it_ended(
    tmp_path: Path,
) -> None:
    store = await EventStore.connect(f"sqlite+aiosqlite:///{tmp_path}/jarvis.db")
    evening, night, morning = (
        DAY - timedelta(hours=3),
        DAY - timedelta(hours=1),
        DAY + timedelta(hours=1),
    )
    store.append(
        [
            change(evening, "mended", Health.HEALTHY, None),
            change(night, "mended", Health.UNHEALTHY, Health.HEALTHY),
            Event(
                EventKind.ACTION_ESCALATED,
                night + timedelta(minutes=30),
                "escalated-mended",
                resource="sim://mended",
                action_kind="restart",
            ),
            change(morning, "mended", Health.HEALTHY, Health.UNHEALTHY),
            # Healthy all along: a change of its own in the day is no incident.
            change(evening, "steady", Health.HEALTHY, None),
            change(morning, "steady", Health.HEALTHY, Health.HEALTHY),
        ]
    )
    await store.flush()
    try:
        figures = await load_figures(store, DAY, 0.0)
    finally:
        await store.aclose()
    got = [(i.resource, i.start, i.seconds, i.human) for i in figures.incidents]
    assert got == [("sim://mended", night, 7200.0, True)]
    assert figures.median_seconds == 7200.0


def escalated(at: datetime, name: str) -> Event:
    return Event(
        EventKind.ACTION_ESCALATED,
        at,
        f"escalated-{name}-{at:%d%H%M}",
        resource=f"sim://{name}",
        action_kind="restart",
        reason=f"{name}: 3 attempts failed",
    )


async def test_escalations_opened_before_the_day_and_still_open_are_listed(
    tmp_path: Path,
) -> None:
    """An on-call reading the day's report sees what is still waiting for a human."""
    store = await EventStore.connect(f"sqlite+aiosqlite:///{tmp_path}/jarvis.db")
    days_ago = DAY - timedelta(days=3)
    store.append(
        [
            change(days_ago, "stuck", Health.UNHEALTHY, Health.HEALTHY),
            escalated(days_ago + timedelta(minutes=5), "stuck"),
            # Answered before the day: an operator reset it, then it recovered.
            change(days_ago, "reset", Health.UNHEALTHY, Health.HEALTHY),
            escalated(days_ago + timedelta(minutes=5), "reset"),
            Event(
                EventKind.RETRIES_RESET,
                days_ago + timedelta(hours=2),
                "reset-reset",
                resource="sim://reset",
            ),
            # Answered in the day: it recovered in the morning.
            change(DAY - timedelta(hours=2), "mended", Health.UNHEALTHY, Health.HEALTHY),
            escalated(DAY - timedelta(hours=1), "mended"),
            change(DAY + timedelta(hours=1), "mended", Health.HEALTHY, Health.UNHEALTHY),
            # Opened in the day, still open.
            change(DAY + timedelta(hours=2), "today", Health.UNHEALTHY, Health.HEALTHY),
            escalated(DAY + timedelta(hours=3), "today"),
            # Opened after the day (a report made late): not this day's.
            escalated(DAY + timedelta(days=1, hours=1), "later"),
        ]
    )
    await store.flush()
    try:
        figures = await load_figures(store, DAY, 0.0)
    finally:
        await store.aclose()
    assert [(e.resource, e.ts) for e in figures.escalations_open] == [
        ("sim://stuck", days_ago + timedelta(minutes=5)),
        ("sim://today", DAY + timedelta(hours=3)),
    ]
    text = markdown(figures)
    assert f"| sim://stuck | restart | {days_ago + timedelta(minutes=5):%Y-%m-%d %H:%M} |" in text
