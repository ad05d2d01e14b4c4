"""Only an explicit release releases the kill switch: Redis restarted empty keeps it engaged.

A private `redis-server` (no persistence) holds the switch; restarting it loses
the hash, as a Redis restart or failover without persistence would. The
event store still holds the engage, so the switch stays engaged until an
operator releases it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from jarvis.model import Action, ResourceRef, Restart
from tests.fakes import FakeActuator, ProposeEach
from tests.loop.conftest import AppFactory
from tests.private_redis import PrivateRedis, private_redis

pytestmark = pytest.mark.anyio

RESTART = Action(ResourceRef("sim", "api"), Restart(), "p", "r")


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[PrivateRedis]:
    with private_redis(tmp_path) as server:
        yield server


async def test_an_engaged_switch_stays_engaged_when_redis_restarts_empty(
    make_app: AppFactory, fleet: FakeActuator, redis_server: PrivateRedis
) -> None:
    """After Redis loses the hash, the recorded engage still blocks; a release unblocks."""
    app = await make_app([ProposeEach([RESTART])], redis_url=redis_server.url)
    await app.killswitch.set(engaged=True, actor="alice", reason="incident 7")
    redis_server.restart()

    blocked = await app.reconciler.tick()
    assert [d.verdict.reason for d in blocked.decisions] == ["killswitch"]
    assert "record is missing" in blocked.decisions[0].verdict.detail
    assert "incident 7" in blocked.decisions[0].verdict.detail
    assert fleet.applied == []
    status = await app.killswitch.read()
    assert status.engaged and status.actor == "alice"

    await app.killswitch.set(engaged=False, actor="alice", reason="resolved")
    allowed = await app.reconciler.tick()
    assert [d.verdict.allowed for d in allowed.decisions] == [True]
    assert len(fleet.applied) == 1


async def test_a_new_installation_with_no_record_anywhere_is_released(
    make_app: AppFactory, fleet: FakeActuator, redis_server: PrivateRedis
) -> None:
    """No hash and no recorded flip: nobody ever engaged it, so actions go ahead."""
    app = await make_app([ProposeEach([RESTART])], redis_url=redis_server.url)
    report = await app.reconciler.tick()
    assert [d.verdict.allowed for d in report.decisions] == [True]


async def test_a_release_recorded_last_reads_as_released_after_a_restart(
    make_app: AppFactory, fleet: FakeActuator, redis_server: PrivateRedis
) -> None:
    """Engage, release, then Redis restarts empty: the last flip was a release, so it is."""
    app = await make_app([ProposeEach([RESTART])], redis_url=redis_server.url)
    await app.killswitch.set(engaged=True, actor="alice", reason="incident")
    await app.killswitch.set(engaged=False, actor="bob", reason="fixed")
    redis_server.restart()
    report = await app.reconciler.tick()
    assert [d.verdict.allowed for d in report.decisions] == [True]
