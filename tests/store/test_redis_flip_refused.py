"""A kill-switch flip in Redis that the server's ACL refuses part of happens whole or not at
all, and is reported as it went.

Through a private redis-server (`tests.private_redis`) whose user ``flip`` is granted the
switch's commands less some; the hash is read back as the server's open default user.
Before, a user refused MULTI alone had DEL and HSET run at once, outside any transaction:
the flip was reported failed, naming the rule to grant, and had happened; a release told
the operator the switch was still engaged while it was released.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import anyio
import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st

from jarvis.model import KillSwitchState
from jarvis.store import StoreError
from jarvis.store.redis_killswitch import RedisKillSwitch
from tests.private_redis import PrivateRedis, private_redis

KEY = "jarvis:killswitch"
USER = "flip"
PASSWORD = "flip-pw-7Kd"

NEEDED = ("hgetall", "del", "hset", "multi", "exec", "watch")
"""The commands of the rule `RedisKillSwitch` names, each of which a test may refuse."""
WRITES = frozenset({"del", "hset", "multi", "exec"})
"""What an engage (`RedisKillSwitch.write`) sends; a release sends WATCH too."""

AT = datetime(2025, 3, 1, 12, 0, 5, tzinfo=UTC)
ENGAGED = KillSwitchState(engaged=True, actor="alice@ops", reason="incident 42", changed_at=AT)
RELEASED = KillSwitchState(engaged=False, actor="bob", reason="all clear", changed_at=AT)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateRedis]:
    with private_redis(tmp_path_factory.mktemp("redis")) as started:
        yield started


@pytest.fixture(scope="module")
def admin(server: PrivateRedis) -> Iterator[redis.Redis]:
    """Redis's default user, which this server leaves open: sets the stage and reads it back."""
    client = redis.Redis.from_url(server.url)
    yield client
    client.close()


def _grant_all_but(admin: redis.Redis, refused: frozenset[str]) -> None:
    """Grant user ``flip`` the switch's key and commands but ``refused``, and UNWATCH, which
    the rule once named (redis-py's pipeline sent it as a watched release stopped short)."""
    commands = [f"-{command}" if command in refused else f"+{command}" for command in NEEDED]
    admin.acl_setuser(
        USER,
        enabled=True,
        reset=True,
        passwords=[f"+{PASSWORD}"],
        keys=[KEY],
        commands=["+unwatch", *commands],
    )


def _set(server: PrivateRedis, state: KillSwitchState) -> None:
    """Write ``state`` as Jarvis does, as the default user."""

    async def write() -> None:
        switch = RedisKillSwitch(server.url)
        try:
            await switch.write(state)
        finally:
            await switch.aclose()

    anyio.run(write)


def _url(server: PrivateRedis) -> str:
    return f"redis://{USER}:{PASSWORD}@127.0.0.1:{server.port}/0"


async def _flip(switch: RedisKillSwitch, state: KillSwitchState) -> None:
    """An engage writes; a release watches, records (nothing here) and writes."""

    async def record() -> None:
        pass

    if state.engaged:
        await switch.write(state)
    else:
        await switch.release(state, record)


def _flip_as_user(server: PrivateRedis, state: KillSwitchState) -> None:
    """Flip to ``state`` as user ``flip``, with a client of its own."""

    async def flip() -> None:
        switch = RedisKillSwitch(_url(server))
        try:
            await _flip(switch, state)
        finally:
            await switch.aclose()

    anyio.run(flip)


def _read(server: PrivateRedis) -> KillSwitchState | None:
    """The switch as the default user reads it."""

    async def read() -> KillSwitchState | None:
        switch = RedisKillSwitch(server.url)
        try:
            return await switch.read()
        finally:
            await switch.aclose()

    return anyio.run(read)


@pytest.mark.parametrize("refused", ["multi", "exec", "hset", "del"])
@pytest.mark.parametrize(
    ("before", "after"), [(RELEASED, ENGAGED), (ENGAGED, RELEASED)], ids=["engage", "release"]
)
def test_a_flip_refused_a_command_changes_nothing_and_names_the_grant(
    server: PrivateRedis,
    admin: redis.Redis,
    refused: str,
    before: KillSwitchState,
    after: KillSwitchState,
) -> None:
    """A flip whose user is refused MULTI, EXEC, HSET or DEL fails naming the refusal and
    the rule to grant, and leaves the hash byte for byte as it was."""
    _set(server, before)
    _grant_all_but(admin, frozenset({refused}))
    kept = admin.hgetall(KEY)

    with pytest.raises(StoreError) as raised:
        _flip_as_user(server, after)

    assert admin.hgetall(KEY) == kept
    message = str(raised.value)
    assert f"its ACL denies user {USER} what the kill switch needs: NoPermissionError: " in message
    assert f"no permissions to run the '{refused}' command" in message, message
    assert f"(ACL SETUSER {USER} +hgetall +del +hset +multi +exec +watch ~{KEY})" in message


states = st.builds(
    KillSwitchState,
    engaged=st.booleans(),
    actor=st.text(max_size=20),
    reason=st.text(max_size=40),
    changed_at=st.none() | st.just(AT),
)


@settings(max_examples=150)
@given(refused=st.frozensets(st.sampled_from(NEEDED)), before=states, after=states)
def test_a_flip_happens_whole_and_reported_done_or_not_at_all_and_reported_failed(
    server: PrivateRedis,
    admin: redis.Redis,
    refused: frozenset[str],
    before: KillSwitchState,
    after: KillSwitchState,
) -> None:
    """Whatever subset of its commands the ACL refuses, a flip is reported done exactly when
    it sends none of them, and then the hash holds its state; reported failed, the hash is
    byte for byte as it was."""
    _set(server, before)
    _grant_all_but(admin, refused)
    kept = admin.hgetall(KEY)
    sends = WRITES if after.engaged else WRITES | {"watch"}
    try:
        _flip_as_user(server, after)
    except StoreError as exc:
        assert refused & sends, exc
        assert admin.hgetall(KEY) == kept
    else:
        assert not refused & sends
        assert _read(server) == after
