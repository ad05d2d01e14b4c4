"""The routing actuator with a Redis user whose ACL refuses one command its write needs.

Redis checks the ACL at each command inside a script, and a failed script keeps
what it wrote: for a user allowed DEL and refused HSET the write script deleted
the route's hash and failed, leaving every application with no route while the
action was recorded as failed. Now the script asks before its first write; a
refusal leaves the hash exactly as it was, and the outcome is a terminal failure
naming the user, what was refused and the rule to grant, never the password.
Redis out of memory cannot stop the script between its DEL and HSET (pinned last).
A private redis-server started with ``--user`` rules (`tests.private_redis`).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from redis.typing import EncodableT

from jarvis.actuators.llm.routing import RoutingActuator, acl_rule
from jarvis.app import build_app
from jarvis.config import load_settings
from jarvis.config.cost import RouteSettings, RoutingSettings
from jarvis.loop.clock import VirtualClock
from jarvis.model import Action, ErrorKind, EventKind, ResourceRef, SetWeights
from jarvis.routing import RoutingClient
from tests.actions import new_key
from tests.cost.builders import NOW
from tests.fakes import ProposeEach
from tests.private_redis import PrivateRedis, private_redis

pytestmark = pytest.mark.anyio

PASSWORD = "route-acl-pw-Zk3v"
KEY = "jarvis:route:chat"
NEEDS = ["+hgetall", "+hget", "+evalsha", "+script|load", "+del", "+hset"]
USERS = {
    "no-hset": "+hset",
    "no-del": "+del",
    "no-evalsha": "+evalsha",
    "no-hget": "+hget",
}
"""Each user, named for what it lacks: every command routing needs on its keys but one."""
REFUSED = {
    "no-hset": "the ACL refuses HSET on jarvis:route:chat",
    "no-del": "the ACL refuses DEL on jarvis:route:chat",
    "no-evalsha": "no permissions to run the 'evalsha' command",
    "no-hget": "the ACL refuses HGET on jarvis:route:chat",
}
"""Redis's reason each one's write fails with."""
SETTINGS = RoutingSettings(
    enabled=True,
    routes={"chat": RouteSettings(weights={"gpt-4o": 0.6, "gemini": 0.2, "claude": 0.2})},
)
CHAT = ResourceRef("route", "chat", "route")
BEFORE: dict[EncodableT, EncodableT] = {
    b"_version": b"4",
    b"_updated_at": b"2025-06-01T00:00:00+00:00",
    b"_action_key": b"an earlier action",
    b"gpt-4o": b"0.6",
    b"gemini": b"0.2",
    b"claude": b"0.2",
}
"""The route as an earlier write left it, seeded by the admin client."""
NEW = SetWeights({"gpt-4o": 0.3, "gemini": 0.5, "claude": 0.2})
RULE = re.compile(r"\(ACL SETUSER (\S+) ([^)]*)\)")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[PrivateRedis]:
    args: list[str] = []
    for name, lacking in USERS.items():
        rule = [need for need in NEEDS if need != lacking]
        args += ["--user", name, "on", f">{PASSWORD}", "~jarvis:route:*", *rule]
    # The default user stays open: the admin client the tests seed and read with.
    with private_redis(tmp_path, args) as started:
        yield started


@pytest.fixture
async def admin(server: PrivateRedis) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(server.url)
    await client.hset(KEY, mapping=BEFORE)
    try:
        yield client
    finally:
        await client.aclose()


def _actuator(server: PrivateRedis, user: str, clock: VirtualClock, db: int = 0) -> RoutingActuator:
    url = f"redis://{user}:{PASSWORD}@127.0.0.1:{server.port}/{db}"
    return RoutingActuator.from_settings(SETTINGS, clock=clock, redis_url=url)


@pytest.mark.parametrize("user", list(USERS))
async def test_a_refused_write_leaves_the_route_exactly_as_it_was(
    server: PrivateRedis, admin: aioredis.Redis, user: str
) -> None:
    """A user refused HSET, DEL, EVALSHA or HGET fails the write terminally, saying what the
    ACL refuses, on which key, and the rule to grant; the route's hash is untouched."""
    routing = _actuator(server, user, VirtualClock(NOW))
    try:
        await routing.observe()
        outcome = await routing.apply(Action(CHAT, NEW, "cost", "test"), new_key())
    finally:
        await routing.aclose()

    assert await admin.hgetall(KEY) == BEFORE
    assert not outcome.ok
    assert outcome.error_kind is ErrorKind.TERMINAL
    assert outcome.error_code == "NOPERM"
    where = f"Redis at 127.0.0.1:{server.port}: its ACL denies user {user} what routing needs"
    assert f"{where}: NoPermissionError: " in outcome.detail
    assert REFUSED[user] in outcome.detail
    assert f"grant it (ACL SETUSER {user} {acl_rule('jarvis:route:')})" in outcome.detail
    assert PASSWORD not in outcome.detail


async def test_applications_keep_the_weights_a_refused_write_did_not_replace(
    server: PrivateRedis, admin: aioredis.Redis
) -> None:
    """After a write the ACL refused, the routing client, fresh or with the weights cached,
    still reads the route's old weights and version."""
    cached = RoutingClient(server.url, max_age=0)
    routing = _actuator(server, "no-hset", VirtualClock(NOW))
    try:
        old = (("claude", 0.2), ("gemini", 0.2), ("gpt-4o", 0.6))
        assert cached.weights("chat") == old
        await routing.observe()
        assert not (await routing.apply(Action(CHAT, NEW, "cost", "test"), new_key())).ok
        fresh = RoutingClient(server.url)
        try:
            assert fresh.weights("chat") == old
            assert fresh.version("chat") == "4"
        finally:
            fresh.close()
        assert cached.weights("chat") == old
        assert cached.version("chat") == "4"
    finally:
        cached.close()
        await routing.aclose()


@pytest.mark.parametrize("db", [0, 2])
async def test_the_rule_it_names_is_all_routing_needs(
    server: PrivateRedis, admin: aioredis.Redis, db: int
) -> None:
    """Given exactly the rule the failure names, and nothing else, the user seeds a route,
    observes it and writes its weights, in database 0 or another (SELECT)."""
    clock = VirtualClock(NOW)
    refused = _actuator(server, "no-hset", clock, db)
    try:
        failed = await refused.apply(Action(CHAT, NEW, "cost", "test"), new_key())
    finally:
        await refused.aclose()
    match = RULE.search(failed.detail)
    assert match is not None and match[1] == "no-hset", failed.detail
    grant = ["reset", "on", f">{PASSWORD}", *match[2].split()]
    await admin.execute_command("ACL", "SETUSER", "no-hset", *grant)  # type: ignore[no-untyped-call]  # untyped in redis-py
    await admin.delete(KEY)

    routing = _actuator(server, "no-hset", clock, db)
    try:
        (seeded,) = await routing.observe()
        assert seeded.record_attributes()["seeded"] is True
        key = new_key()
        outcome = await routing.apply(Action(CHAT, NEW, "cost", "test"), key)
        assert outcome.ok, outcome.detail
        assert await routing.confirm_applied(CHAT, "set_weights", key)
    finally:
        await routing.aclose()
    stored = aioredis.Redis.from_url(f"{server.url.rpartition('/')[0]}/{db}")
    try:
        assert (await stored.hgetall(KEY))[b"gemini"] == b"0.5"
    finally:
        await stored.aclose()


async def test_the_loop_escalates_a_refused_write_at_once_and_keeps_the_route(
    server: PrivateRedis, admin: aioredis.Redis, sqlite_url: str
) -> None:
    """Through the real loop, a SET_WEIGHTS the ACL refuses is recorded failed as terminal
    and escalated on its first attempt; the route still holds its old weights."""
    clock = VirtualClock(NOW)
    settings = load_settings(
        database_url=sqlite_url,
        allowlist=[{"provider": "route", "resources": "*", "actions": ["set_weights"]}],
    )
    routing = _actuator(server, "no-hset", clock)
    policy = ProposeEach([Action(CHAT, NEW, "scripted", "drill")])
    app = await build_app(
        settings, clock=clock, actuators=[routing], policies=[policy], run_id="acl"
    )
    try:
        report = await app.reconciler.tick()
        failed = await app.store.events(kinds=[EventKind.ACTION_FAILED.value])
        escalated = await app.store.events(kinds=[EventKind.ACTION_ESCALATED.value])
    finally:
        await app.aclose()

    assert report.applied == []
    assert await admin.hgetall(KEY) == BEFORE
    (event,) = failed
    assert event.payload["error_kind"] == ErrorKind.TERMINAL.value
    assert "the ACL refuses HSET on jarvis:route:chat" in str(event.payload["detail"])
    assert [e.resource for e in escalated] == ["route://chat"]


async def test_a_redis_out_of_memory_cannot_stop_the_write_between_delete_and_rewrite(
    server: PrivateRedis, admin: aioredis.Redis
) -> None:
    """Over ``maxmemory`` with ``noeviction`` Redis refuses a script's write only until its
    first one: the DEL passes, and the HSETs after it land, so the route is whole."""
    await admin.config_set("maxmemory-policy", "noeviction")
    await admin.config_set("maxmemory", "1")
    routing = RoutingActuator.from_settings(SETTINGS, clock=VirtualClock(NOW), redis_url=server.url)
    try:
        await routing.observe()
        key = new_key()
        outcome = await routing.apply(Action(CHAT, NEW, "cost", "test"), key)
    finally:
        await routing.aclose()
        await admin.config_set("maxmemory", "0")

    assert outcome.ok, outcome.detail
    stored = await admin.hgetall(KEY)
    assert stored[b"_version"] == b"5"
    assert stored[b"_action_key"] == key.encode()
    assert stored[b"gemini"] == b"0.5"
