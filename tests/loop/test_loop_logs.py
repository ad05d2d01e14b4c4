"""What the loop writes to its log about failures and about changes made by another process."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import pytest
from structlog.testing import capture_logs

from jarvis.loop.clock import VirtualClock
from jarvis.loop.killswitch import KillSwitch
from jarvis.model import Action, Outcome, ResourceRef, Restart, RetryState
from jarvis.store import DbKillSwitch, EventStore
from tests.fakes import FakeActuator, ProposeEach
from tests.loop.conftest import AppFactory

pytestmark = pytest.mark.anyio


def restart(name: str) -> Action:
    return Action(ResourceRef("sim", name), Restart(), "scripted", "test")


def entries(logs: list[MutableMapping[str, Any]], event: str) -> list[MutableMapping[str, Any]]:
    return [entry for entry in logs if entry["event"] == event]


async def test_a_failed_action_is_logged_at_warning_with_its_resource(
    make_app: AppFactory, fleet: FakeActuator
) -> None:
    """`action failed` is a warning naming the resource; `action applied` stays info."""

    async def fail(action: Action) -> Outcome | None:
        return Outcome.failure("crash loop") if action.target.name == "web" else None

    fleet.on_apply = fail
    app = await make_app([ProposeEach([restart("web"), restart("api")])])
    with capture_logs() as logs:
        await app.reconciler.tick()
    (failed,) = entries(logs, "action failed")
    assert failed["log_level"] == "warning"
    assert failed["resource"] == "sim://web" and failed["detail"] == "crash loop"
    (applied,) = entries(logs, "action applied")
    assert applied["log_level"] == "info" and applied["resource"] == "sim://api"


PROVIDER_SAYS = (
    "(503)\nReason: Service Unavailable\nHTTP response body: level=error forged=1"
    " \x1b]0;owned\x07 \u202eevil"
)
"""A provider SDK's error text over several lines (the Kubernetes client's shape), with an
escape sequence and a bidi override in what the server sent."""


async def test_a_provider_s_error_text_is_logged_on_one_printable_line(
    make_app: AppFactory, fleet: FakeActuator
) -> None:
    """An observe failure and an action failure whose provider text spans lines and holds
    control characters are each one printable line in the log, nothing of it forged."""

    async def fail(action: Action) -> Outcome | None:
        return Outcome.failure(PROVIDER_SAYS)

    app = await make_app([ProposeEach([restart("web")])])
    fleet.on_apply = fail
    with capture_logs() as logs:
        await app.reconciler.tick()
        fleet.observe_error = PROVIDER_SAYS
        await app.reconciler.tick()

    (failed,) = entries(logs, "action failed")
    (unobserved,) = entries(logs, "observe failed")
    for said in (failed["detail"], unobserved["error"]):
        assert said.isprintable(), said
        assert "Reason: Service Unavailable HTTP response body: level=error forged=1" in said
        assert "\\x1b]0;owned\\x07 \\u202eevil" in said


async def test_a_kill_switch_flip_from_another_process_is_logged_at_the_next_tick(
    make_app: AppFactory, db_url: str, clock: VirtualClock
) -> None:
    """The daemon logs an engage and a release it only sees through its next read."""
    app = await make_app()
    await app.reconciler.tick()
    other = await EventStore.connect(db_url)
    try:
        cli = KillSwitch(DbKillSwitch(other.engine), other, clock)
        await cli.set(engaged=True, actor="cli:alice", reason="incident 42")
        with capture_logs() as logs:
            await app.reconciler.tick()
            await app.reconciler.tick()
        (engaged,) = entries(logs, "kill switch engaged")
        assert engaged["log_level"] == "warning"
        assert engaged["actor"] == "cli:alice" and engaged["reason"] == "incident 42"
        await cli.set(engaged=False, actor="cli:bob", reason="over")
        with capture_logs() as logs:
            await app.reconciler.tick()
        (released,) = entries(logs, "kill switch released")
        assert released["actor"] == "cli:bob"
    finally:
        await other.aclose()


async def test_a_quarantine_lifted_from_another_process_is_logged_at_the_next_tick(
    make_app: AppFactory, db_url: str
) -> None:
    """`jarvis retries reset` beside the daemon shows in the daemon's log as a lifted quarantine."""
    app = await make_app()
    app.store.stage_retry(
        RetryState("sim://web", "restart", consecutive_failures=3, quarantined=True)
    )
    await app.store.flush()
    await app.reconciler.tick()
    other = await EventStore.connect(db_url)
    try:
        assert await other.reset_retries("sim://web") == 1
    finally:
        await other.aclose()
    with capture_logs() as logs:
        await app.reconciler.tick()
    (lifted,) = entries(logs, "quarantine lifted")
    assert lifted["resource"] == "sim://web" and lifted["action"] == "restart"
