"""The kill switch engaged while an allowed action's intent is written stops the action.

The guard reads the switch fresh right before an action; the intent is then
made durable, which on a slow or locked database takes seconds. An engage that
lands in that window must still stop the call to the provider: the switch is
read again once the intent is durable, and the intent is closed as not sent.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import pytest

from jarvis.app import App
from jarvis.loop.clock import VirtualClock
from jarvis.loop.killswitch import KillSwitch
from jarvis.loop.reconciler import TickReport
from jarvis.model import EventKind, Health, KillSwitchState, RetryState
from jarvis.policies.heal import HealPolicy
from jarvis.store import DbKillSwitch, EventStore, KillSwitchBackend, upgrade
from jarvis.store.redis_killswitch import RedisKillSwitch
from tests.fakes import FakeActuator
from tests.loop.conftest import AppFactory
from tests.store.tcp_proxy import TcpProxy

pytestmark = pytest.mark.anyio

Key = tuple[str, str]
RESTART: Key = ("sim://web", "restart")


class FreezeAtRead:
    """The app's kill-switch backend, freezing the database after a chosen read once armed.

    A tick with an action reads the switch three times: for the gauge, as the
    guard starts, and fresh right before the apply. Freezing after that third
    read holds the intent's flush, the next thing to reach the database.
    """

    def __init__(self, backend: KillSwitchBackend, proxy: TcpProxy) -> None:
        self.backend = backend
        self.proxy = proxy
        self.left: int | None = None

    def arm(self, reads: int) -> None:
        self.left = reads

    async def read(self) -> KillSwitchState | None:
        state = await self.backend.read()
        if self.left is not None:
            self.left -= 1
            if self.left == 0:
                self.proxy.freeze()
        return state

    async def write(self, state: KillSwitchState) -> None:
        await self.backend.write(state)

    async def release(self, state: KillSwitchState, record: Callable[[], Awaitable[None]]) -> None:
        await self.backend.release(state, record)

    async def aclose(self) -> None:
        await self.backend.aclose()


async def engage_during_intent(
    app: App, switch: FreezeAtRead, proxy: TcpProxy, other: KillSwitch
) -> TickReport:
    """One tick whose intent flush waits on a frozen database while ``other`` engages."""
    reports: list[TickReport] = []

    async def tick() -> None:
        reports.append(await app.reconciler.tick())

    switch.arm(3)
    try:
        with anyio.fail_after(60):
            async with anyio.create_task_group() as group:
                group.start_soon(tick)
                await proxy.holding()  # the intent's flush is on its way, not committed
                await other.set(engaged=True, actor="oncall", reason="stop everything")
                proxy.thaw()
    finally:
        proxy.thaw()
    (report,) = reports
    return report


async def check_not_sent(
    app: App, fleet: FakeActuator, report: TickReport, before: dict[Key, RetryState]
) -> None:
    """The second restart reached no provider, says why, and charged no attempt."""
    assert len(fleet.applied) == 1  # the first tick's restart only
    (decision,) = report.decisions
    assert decision.verdict.reason == "killswitch"
    assert decision.outcome is None
    blocks = app.metrics.registry.get_sample_value(
        "jarvis_actions_blocked_total", {"reason": "killswitch"}
    )
    assert blocks == 1
    store = app.store
    events = await store.events(kinds=[EventKind.ACTION_STARTED, EventKind.ACTION_FAILED])
    intent = next(e for e in events if e.tick_id == report.tick_id and e.kind == "action.started")
    (closed,) = [e for e in events if e.action_id == intent.action_id and e is not intent]
    assert closed.kind is EventKind.ACTION_FAILED
    assert closed.withheld == "killswitch"
    assert closed.payload["error_kind"] is None
    assert "not sent: stop everything" in str(closed.payload["detail"])
    assert await store.open_intents() == []
    assert await store.load_retries() == before
    blocked = await store.events(kinds=[EventKind.ACTION_BLOCKED])
    assert [(e.tick_id, e.reason) for e in blocked] == [(report.tick_id, "killswitch")]


async def first_restart(
    app: App, fleet: FakeActuator, clock: VirtualClock
) -> dict[Key, RetryState]:
    """A restart that did not heal ``web``: its attempt is on the ledger; the next is allowed."""
    fleet.restart_heals = False
    fleet.services["web"].health = Health.UNHEALTHY
    await app.killswitch.set(engaged=False, actor="ops", reason="all clear")
    await app.reconciler.tick()
    assert len(fleet.applied) == 1
    before = await app.store.load_retries()
    assert len(before[RESTART].attempts) == 1
    clock.advance(30)
    return before


async def test_an_engage_in_the_database_during_the_intent_flush_stops_the_action(
    make_app: AppFactory,
    fleet: FakeActuator,
    clock: VirtualClock,
    pg_url: str,
    pg_proxy: TcpProxy,
    tmp_path: Path,
) -> None:
    """Switch in PostgreSQL, engaged by another store while the intent waits: nothing is sent."""
    await upgrade(pg_url)
    app = await make_app(
        [HealPolicy()],
        database_url=pg_proxy.url_for(pg_url),
        spool_path=str(tmp_path / "spool.jsonl"),
    )
    before = await first_restart(app, fleet, clock)
    switch = FreezeAtRead(app.killswitch.backend, pg_proxy)
    app.killswitch.backend = switch
    other_store = await EventStore.connect(pg_url, spool_path=tmp_path / "other.jsonl")
    other = KillSwitch(DbKillSwitch(other_store.engine), other_store, clock)
    try:
        report = await engage_during_intent(app, switch, pg_proxy, other)
    finally:
        await other_store.aclose()

    await check_not_sent(app, fleet, report, before)


async def test_an_engage_in_redis_during_the_intent_flush_stops_the_action(
    make_app: AppFactory,
    fleet: FakeActuator,
    clock: VirtualClock,
    pg_url: str,
    pg_proxy: TcpProxy,
    redis_url: str,
    tmp_path: Path,
) -> None:
    """Switch in Redis, engaged by another process's client while the intent waits."""
    await upgrade(pg_url)
    app = await make_app(
        [HealPolicy()],
        database_url=pg_proxy.url_for(pg_url),
        spool_path=str(tmp_path / "spool.jsonl"),
        redis_url=redis_url,
    )
    before = await first_restart(app, fleet, clock)
    switch = FreezeAtRead(app.killswitch.backend, pg_proxy)
    app.killswitch.backend = switch
    other_store = await EventStore.connect(pg_url, spool_path=tmp_path / "other.jsonl")
    other = KillSwitch(RedisKillSwitch(redis_url), other_store, clock)
    try:
        report = await engage_during_intent(app, switch, pg_proxy, other)
    finally:
        await other.backend.aclose()
        await other_store.aclose()

    await check_not_sent(app, fleet, report, before)


async def test_a_withheld_action_spends_no_disruption_budget(
    make_app: AppFactory,
    fleet: FakeActuator,
    clock: VirtualClock,
    pg_url: str,
    pg_proxy: TcpProxy,
    redis_url: str,
    tmp_path: Path,
) -> None:
    """Two restarts an hour: the first, one withheld, and after the release the second goes out."""
    await upgrade(pg_url)
    budget = {"name": "two", "provider": "sim", "actions": ["restart"], "max": 2}
    app = await make_app(
        [HealPolicy()],
        database_url=pg_proxy.url_for(pg_url),
        spool_path=str(tmp_path / "spool.jsonl"),
        redis_url=redis_url,
        budgets=[{**budget, "window_seconds": 3600}],
    )
    await first_restart(app, fleet, clock)
    switch = FreezeAtRead(app.killswitch.backend, pg_proxy)
    app.killswitch.backend = switch
    other_store = await EventStore.connect(pg_url, spool_path=tmp_path / "other.jsonl")
    other = KillSwitch(RedisKillSwitch(redis_url), other_store, clock)
    try:
        await engage_during_intent(app, switch, pg_proxy, other)
        await other.set(engaged=False, actor="oncall", reason="all clear")
    finally:
        await other.backend.aclose()
        await other_store.aclose()
    clock.advance(30)

    report = await app.reconciler.tick()

    assert [d.verdict.reason for d in report.decisions] == [None]
    assert len(fleet.applied) == 2
