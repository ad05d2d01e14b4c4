"""Cloud Run updates slower than the actuator waits, confirmed later through the whole loop.

The actuator is built from a ``[cloudrun]`` section aimed at the fake API whose
operations run until the test finishes them; the reconciler runs on a real
SQLite store. Each restart is accepted but still rolling out when
``operation_timeout`` ends the wait, so it is recorded ``action.unknown``; once
Cloud Run finishes it, the next tick's question proves it made.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from jarvis.actuators.cloudrun.actuator import CloudRunActuator
from jarvis.app import App, build_app
from jarvis.config import load_settings
from jarvis.loop.clock import VirtualClock
from jarvis.model import Action, EventKind, ResourceRef, Restart
from tests.cloudrun.conftest import PROJECT, REGION
from tests.cloudrun.fake_server import FakeCloudRun
from tests.fakes import ProposeEach

pytestmark = pytest.mark.anyio

API = f"cloudrun://{PROJECT}/{REGION}/api"
RESTART = Action(ResourceRef.parse(API), Restart(), "scripted", "because the test says so")


@pytest.fixture
async def app(
    fake: FakeCloudRun, sqlite_url: str, clock: VirtualClock, tmp_path: Path
) -> AsyncIterator[App]:
    """Restarts ``api`` every tick; the actuator waits 0.3 s for an operation, the breakers
    are off (three timeouts would open Cloud Run's, which takes them off the ledger)."""
    settings = load_settings(
        database_url=sqlite_url,
        spool_path=tmp_path / "spool.jsonl",
        allowlist=[{"provider": "cloudrun", "resources": "*", "actions": ["*"]}],
        breakers={"enabled": False},
        cloudrun={
            "project": PROJECT,
            "region": REGION,
            "services": ["api", "worker"],
            "credentials": "anonymous",
            "api_endpoint": fake.endpoint,
            "request_timeout": 2,
            "operation_timeout": 0.3,
            "poll_initial": 0.01,
            "poll_maximum": 0.05,
        },
    )
    assert settings.cloudrun is not None
    cloudrun = CloudRunActuator.from_settings(settings.cloudrun, clock=clock)
    built = await build_app(
        settings, clock=clock, actuators=[cloudrun], policies=[ProposeEach([RESTART])], run_id="t"
    )
    yield built
    await built.aclose()


async def tick(app: App, clock: VirtualClock) -> None:
    await app.reconciler.tick()
    clock.advance(30)


async def test_slow_updates_that_succeed_are_confirmed_and_never_escalate(
    app: App, fake: FakeCloudRun, clock: VirtualClock
) -> None:
    """Three restarts outlive the actuator's wait and are recorded unknown; a rollout still
    running is not confirmed, a finished one is, the next tick: nothing escalates."""
    fake.state.operation_polls = None
    await tick(app, clock)
    await tick(app, clock)  # still rolling out: asked, not proven
    assert await app.store.events(kinds=[EventKind.ACTION_APPLIED.value]) == []
    for _ in range(6):
        fake.state.finish_operations()
        await tick(app, clock)

    assert await app.store.events(kinds=[EventKind.ACTION_ESCALATED.value]) == []
    unknown = await app.store.events(kinds=[EventKind.ACTION_UNKNOWN.value])
    applied = await app.store.events(kinds=[EventKind.ACTION_APPLIED.value])
    assert len(unknown) == 3
    assert all("still running" in str(e.payload["detail"]) for e in unknown)
    assert [e.action_id for e in applied] == [e.action_id for e in unknown]
    assert all("jarvis.io/action-key=" in str(e.payload["detail"]) for e in applied)
    row = (await app.store.load_retries())[(API, "restart")]
    assert (row.consecutive_failures, row.quarantined) == (0, False)
