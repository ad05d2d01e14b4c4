"""The kill switch as a Redis hash, for deployments that set ``redis_url``.

Kept apart from `jarvis.store.killswitch` so the redis client is imported only
when it is configured (the composition root imports this module lazily).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import datetime

import redis.asyncio
from redis._parsers import BaseParser
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import (
    AuthenticationError,
    ExecAbortError,
    NoPermissionError,
    RedisError,
    ResponseError,
)
from redis.typing import EncodableT

from jarvis.model import KillSwitchState
from jarvis.redisacl import acl_rule, address, database, denied, user
from jarvis.store.errors import CredentialsRefusedError, FlipOverrunError, StoreError, describe

__all__ = ["RedisKillSwitch"]

REDIS_TIMEOUT_S = 1.0
"""Connect and socket timeout: an unreachable Redis must fail a read fast."""


class RedisKillSwitch:
    """The kill switch as a Redis hash (engaged, actor, reason, changed_at)."""

    def __init__(self, url: str, key: str = "jarvis:killswitch") -> None:
        self._key = key
        self._client: redis.asyncio.Redis = redis.asyncio.Redis.from_url(
            url,
            socket_timeout=REDIS_TIMEOUT_S,
            socket_connect_timeout=REDIS_TIMEOUT_S,
            # Retrying would turn a fail-fast read into a slow one; the guard
            # blocks on failure and reads again before the next action anyway.
            retry=Retry(NoBackoff(), 0),
            # Decoded by `read`, not the client: bytes that are not UTF-8 are
            # damage to report, where the client's decode raised a bare
            # UnicodeDecodeError (a traceback from `jarvis killswitch status`).
            decode_responses=False,
        )
        self._given = self._client.connection_pool.connection_kwargs
        self._where = f"Redis at {address(self._given)}"
        self._who = _credentials(self._given)
        self._rule = acl_rule(COMMANDS, key, db=database(self._given))

    async def read(self) -> KillSwitchState | None:
        """The hash as Jarvis wrote it; None when there is none (Redis lost it, or never had it).

        Anything but exactly the four fields Jarvis writes, with ``engaged``
        exactly ``"1"`` or ``"0"``, is damage and raises StoreError, so a
        tampered ``engaged = "true"`` or ``" 1"`` fails safe instead of
        reading as released.
        """
        try:
            raw = await self._client.hgetall(self._key)
        except (RedisError, OSError) as exc:
            raise self._error("read the kill switch from", exc) from exc
        if not raw:
            return None
        try:
            return _parse({_text(key): _text(value) for key, value in raw.items()})
        except ValueError as exc:  # UnicodeDecodeError too
            raise StoreError(
                f"kill switch hash {self._key!r} in {self._where} is damaged: {exc}"
            ) from exc

    async def write(self, state: KillSwitchState) -> None:
        """Replace the hash with ``state`` whole, or not at all (`_replace`)."""
        try:
            async with self._connection() as connection:
                await self._replace(connection, state)
        except (RedisError, OSError) as exc:
            raise self._error("write the kill switch to", exc) from exc

    async def release(self, state: KillSwitchState, record: Callable[[], Awaitable[None]]) -> None:
        """WATCH the hash, ``record``, then write ``state`` only if nobody flipped it meanwhile.

        Recording a release takes a database round trip or more; an engage
        from another terminal landing in it was overwritten by this release,
        after that operator had been told the switch was engaged. The watch
        is on the flip's own connection: Redis gone meanwhile, the MULTI sent
        on it fails (redis-py reopens only a socket it closed itself, which
        would have lost the watch), a write error and no overrun.
        """
        try:
            async with self._connection() as connection:
                await _command(connection, "WATCH", self._key)
                await record()
                if not await self._replace(connection, state):
                    raise FlipOverrunError(self._where)
        except (RedisError, OSError) as exc:
            raise self._error("write the kill switch to", exc) from exc

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[AbstractConnection]:
        """A connection of the pool's for one flip alone, closed when the flip ends.

        A flip stopped short can leave a watch or an open transaction on it
        (a refusal raised before the rest of the answers are read, a timeout,
        a cancellation), which the next command sent on it would join;
        closed, Redis drops both. The socket is closed before `disconnect`
        first awaits, so a cancelled flip closes it too.
        """
        pool = self._client.connection_pool
        connection: AbstractConnection = await pool.get_connection()  # type: ignore[no-untyped-call]  # untyped in redis-py
        try:
            yield connection
        finally:
            try:
                await connection.disconnect(nowait=True)
            finally:
                await pool.release(connection)

    async def _replace(self, connection: AbstractConnection, state: KillSwitchState) -> bool:
        """DEL and HSET in a checked transaction; False when EXEC answers nil (the watched
        hash changed), raising the first refusal otherwise.

        MULTI goes alone and its answer is checked before anything is queued:
        Redis answers a refused MULTI (NOPERM) with an error and then runs DEL
        and HSET at once, outside any transaction, so the flip happened while
        it was reported failed. Once MULTI is accepted, a command refused as
        it is queued (NOPERM, READONLY), or EXEC itself refused, makes Redis
        discard the whole transaction (EXECABORT). Replaced whole: HSET alone
        kept a stray field, so a release still read as damage (engaged), and
        failed with WRONGTYPE on a key of another type, so neither flip could
        repair the key.
        """
        fields = {
            "engaged": "1" if state.engaged else "0",
            "actor": state.actor,
            "reason": state.reason,
            "changed_at": "" if state.changed_at is None else state.changed_at.isoformat(),
        }
        await _command(connection, "MULTI")
        queued = [
            ("DEL", self._key),
            ("HSET", self._key, *(part for pair in fields.items() for part in pair)),
            ("EXEC",),
        ]
        await connection.send_packed_command(connection.pack_commands(queued), check_health=False)
        # Read in order, each refusal raised as read: the first names the reason (READONLY,
        # NOPERM), where EXEC's answer to it would say only EXECABORT.
        try:
            replies = [await connection.read_response() for _ in queued]
        except ExecAbortError as exc:
            raise _refusal(exc) from None
        executed = replies[-1]
        if executed is None:
            return False
        # Redis checks the ACL again as EXEC runs each command, and a grant taken between
        # queueing and EXEC refuses that command alone. Sent in one write, DEL, HSET and EXEC
        # are run as one read of this connection's, leaving no such gap in practice; should
        # one come, the refusal is raised: a flip is never reported done that was not.
        refused = next((reply for reply in executed if isinstance(reply, ResponseError)), None)
        if refused is not None:
            raise refused
        return True

    def _error(self, doing: str, exc: BaseException) -> StoreError:
        """The one line for a failed read or write (``doing``: what, and from or to): refused
        credentials, or a user the server's ACL denies a command or the key, said as such,
        naming the user but never the password, and lasting."""
        if _credentials_refused(exc):
            return CredentialsRefusedError(
                f"cannot {doing} {self._where}: the server refused these credentials "
                f"({self._who}): {describe(exc)}; fix the user or password in redis_url"
            )
        if isinstance(exc, NoPermissionError):
            # Redis's 42501: the user logged in, and no wait brings the grant.
            return StoreError(
                f"cannot {doing} {self._where}: "
                + denied(self._given, "the kill switch", describe(exc), self._rule, "redis_url"),
                lasting=True,
            )
        return StoreError(f"cannot {doing} {self._where}: {describe(exc)}")

    async def aclose(self) -> None:
        await self._client.aclose()


FIELDS = frozenset({"engaged", "actor", "reason", "changed_at"})
COMMANDS = ("hgetall", "del", "hset", "multi", "exec", "watch")
"""What `read`, `write` and `release` send, the ACL rule's commands (`acl_rule`): HGETALL;
DEL and HSET inside MULTI/EXEC; WATCH (a release stopped short closes its connection rather
than send UNWATCH)."""
FLAGS = {"1": True, "0": False}
DISCARDED = "Transaction discarded because of: "
"""How Redis's EXECABORT begins when it names why EXEC itself was refused."""


def _parse(fields: dict[str, str]) -> KillSwitchState:
    if set(fields) != FIELDS:
        raise ValueError(f"fields {sorted(fields)}, expected {sorted(FIELDS)}")
    engaged = FLAGS.get(fields["engaged"])
    if engaged is None:
        raise ValueError(f"engaged={fields['engaged']!r}, expected '1' or '0'")
    changed = fields["changed_at"]
    at = None
    if changed:
        at = datetime.fromisoformat(changed)
        if at.tzinfo is None:
            raise ValueError(f"changed_at={changed!r} has no time zone")
    return KillSwitchState(
        engaged=engaged, actor=fields["actor"], reason=fields["reason"], changed_at=at
    )


def _refusal(abort: ExecAbortError) -> ResponseError:
    """The refusal of EXEC itself that ``abort`` names ("Transaction discarded because of:
    NOPERM ..."), as redis-py raises it alone (NoPermissionError, so the line names the rule
    to grant); ``abort`` when it names none."""
    reason = str(abort).removeprefix(DISCARDED)
    if reason == str(abort):
        return abort
    refusal: ResponseError = BaseParser.parse_error(reason)  # type: ignore[no-untyped-call]  # untyped in redis-py
    return refusal


async def _command(connection: AbstractConnection, *args: EncodableT) -> object:
    """Send one command and read its answer, a refusal raised (NOPERM, READONLY...)."""
    await connection.send_command(*args, check_health=False)
    return await connection.read_response()


def _credentials_refused(exc: BaseException) -> bool:
    """Whether Redis refused the password or user (WRONGPASS, or NOAUTH: one is required
    and none was given), which redis-py raises as AuthenticationError, or as a bare
    ResponseError keeping the code where it maps none."""
    if isinstance(exc, AuthenticationError):
        return True
    return isinstance(exc, ResponseError) and str(exc).startswith(("NOAUTH", "WRONGPASS"))


def _credentials(kwargs: Mapping[str, object]) -> str:
    """Which credentials the URL gave, in words: the user, and whether a password was given."""
    return f"user {user(kwargs)}, {'a password' if kwargs.get('password') else 'no password'} given"


def _text(value: bytes | str) -> str:
    """UTF-8 text, strictly: raises UnicodeDecodeError (a ValueError) on other bytes."""
    return value.decode() if isinstance(value, bytes) else value
