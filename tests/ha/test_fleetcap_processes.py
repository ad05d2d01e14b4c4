"""The per-tick bound across real replicas: three `jarvis run` processes share six shards
of a simulated fleet that wants more actions than the bound allows.

Every replica ticks its own shards on its own schedule; the bound is the fleet's
(`max_actions_per_tick` per interval-long window, `jarvis.loop.peers.tick_window`).
The record is the judge: grouped by window, the intents every replica wrote
never exceed the bound, while the bound was reached (and refused at write
time, or by the guard's pre-check) often enough to show it was contended.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import anyio
import pytest

from jarvis.loop.peers import tick_window
from jarvis.model import Event
from jarvis.store import EventStore
from tests.ha.test_replicas import (
    HANDOVER,
    START,
    Replica,
    migrated_database,
    running_replicas,
    until,
)

BOUND = 2
INTERVAL = 1.0
WINDOWS = 8
"""Windows in which the bound must have been reached before the record is judged."""
SERVICES = 120
SCALE_ALL = json.dumps(
    [{"match": "sim://*", "min_replicas": 8, "max_replicas": 20, "target_cpu_utilization": 60}]
)
"""Every simulated service runs 1 to 6 replicas: each wants one scale to 8, the fleet 120."""


@pytest.fixture
def pg_url() -> Iterator[str]:
    with migrated_database() as url:
        yield url


@pytest.fixture
def replicas(tmp_path: Path, pg_url: str) -> Iterator[list[Replica]]:
    with running_replicas(
        tmp_path,
        pg_url,
        ["r0", "r1", "r2"],
        interval=str(INTERVAL),
        JARVIS_LOOP__SHARDS="6",
        JARVIS_BOUNDS__MAX_ACTIONS_PER_TICK=str(BOUND),
        JARVIS_SIMULATED__SERVICES=str(SERVICES),
        JARVIS_SCALING__ENABLED="true",
        JARVIS_SCALING__RULES=SCALE_ALL,
    ) as started:
        yield started


async def _actions(url: str) -> tuple[list[Event], list[Event]]:
    store = await EventStore.connect(url)
    try:
        started = await store.events_by_time(kinds=["action.started"])
        blocked = await store.events_by_time(kinds=["action.blocked"])
        return started, [e for e in blocked if e.payload.get("blocked") == "bounds"]
    finally:
        await store.aclose()


def held(group: list[Replica]) -> list[float | None]:
    return [r.metric("jarvis_shards_held") for r in group]


def per_window(started: list[Event]) -> Counter[object]:
    return Counter(tick_window(e.ts, timedelta(seconds=INTERVAL)) for e in started)


def full_windows(url: str) -> int:
    started, _ = anyio.run(_actions, url)
    return sum(1 for n in per_window(started).values() if n >= BOUND)


@pytest.mark.timeout(600)  # three daemons start in up to 90 s on a loaded machine
def test_three_replicas_start_no_more_than_the_bound_in_any_tick_window(
    replicas: list[Replica], pg_url: str
) -> None:
    until(lambda: held(replicas) == [2.0, 2.0, 2.0], START + HANDOVER, "two shards each")
    until(lambda: full_windows(pg_url) >= WINDOWS, 2 * HANDOVER, f"{WINDOWS} full windows")
    for r in replicas:
        r.process.terminate()
    for r in replicas:
        r.process.wait(timeout=60)

    started, blocked = anyio.run(_actions, pg_url)
    counts = per_window(started)
    assert max(counts.values()) <= BOUND, sorted(counts.items())
    # The bound is shared: several replicas wanted actions in it (which one wins a
    # window is timing, so one replica may win them all), and more was wanted
    # than it let through.
    assert len({e.payload.get("replica") for e in [*started, *blocked]}) >= 2
    assert blocked
