"""The kill switch as a Redis hash, for deployments that set ``redis_url``.

Kept apart from `jarvis.store.killswitch` so the redis client is imported only
when it is configured (the composition root imports this module lazily).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime

import redis.asyncio
from redis.asyncio.client import Pipeline
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import (
    AuthenticationError,
    ExecAbortError,
    NoPermissionError,
    RedisError,
    ResponseError,
    WatchError,
)
from redis.typing import EncodableT

from jarvis.model import KillSwitchState
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
        given = self._client.connection_pool.connection_kwargs
        self._where = f"Redis at {_address(given)}"
        self._user = _user(given)
        self._who = _credentials(given)
        self._rule = _acl_rule(key, db=int(given.get("db") or 0))

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
        try:
            async with self._client.pipeline(transaction=True) as replace:
                self._replace(replace, state)
                await replace.execute()
        except (RedisError, OSError) as exc:
            raise self._write_error(exc) from exc

    async def release(self, state: KillSwitchState, record: Callable[[], Awaitable[None]]) -> None:
        """WATCH the hash, ``record``, then write ``state`` only if nobody flipped it meanwhile.

        Recording a release takes a database round trip or more; an engage
        from another terminal landing in it was overwritten by this release,
        after that operator had been told the switch was engaged.
        """
        try:
            async with self._client.pipeline(transaction=True) as replace:
                await replace.watch(self._key)
                await record()
                replace.multi()  # type: ignore[no-untyped-call]  # untyped in redis-py
                self._replace(replace, state)
                await replace.execute()
        except WatchError as exc:
            if _connection_lost(exc):
                raise self._write_error(exc) from exc
            raise FlipOverrunError(self._where) from exc
        except (RedisError, OSError) as exc:
            raise self._write_error(exc) from exc

    def _replace(self, pipe: Pipeline, state: KillSwitchState) -> None:
        # Replaced whole, in one MULTI: HSET alone kept a stray field, so a
        # release still read as damage (engaged), and failed with WRONGTYPE
        # on a key of another type, so neither flip could repair the key.
        mapping: dict[EncodableT, EncodableT] = {
            "engaged": "1" if state.engaged else "0",
            "actor": state.actor,
            "reason": state.reason,
            "changed_at": "" if state.changed_at is None else state.changed_at.isoformat(),
        }
        pipe.delete(self._key)
        pipe.hset(self._key, mapping=mapping)

    def _write_error(self, exc: BaseException) -> StoreError:
        if isinstance(exc, ResponseError) and isinstance(exc.__cause__, ExecAbortError):
            # redis-py raises the refused command's error (READONLY, NOPERM) from
            # the EXECABORT that followed it; `describe` follows causes and would
            # name only "Transaction discarded because of previous errors".
            exc.__cause__ = None
        return self._error("write the kill switch to", exc)

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
                f"cannot {doing} {self._where}: its ACL denies user {self._user} what the "
                f"kill switch needs: {describe(exc)}; grant it (ACL SETUSER {self._user} "
                f"{self._rule}), or give redis_url a user that has it",
                lasting=True,
            )
        return StoreError(f"cannot {doing} {self._where}: {describe(exc)}")

    async def aclose(self) -> None:
        await self._client.aclose()


FIELDS = frozenset({"engaged", "actor", "reason", "changed_at"})
FLAGS = {"1": True, "0": False}


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


def _connection_lost(exc: WatchError) -> bool:
    """Whether the watching connection died (redis-py raises WatchError for that too, naming
    the error), rather than another client changing the hash: Redis going away while a
    release was recorded is no flip that landed first."""
    return "occurred while watching" in str(exc)


def _credentials_refused(exc: BaseException) -> bool:
    """Whether Redis refused the password or user (WRONGPASS, or NOAUTH: one is required
    and none was given), which redis-py raises as AuthenticationError, or as a bare
    ResponseError keeping the code where it maps none."""
    if isinstance(exc, AuthenticationError):
        return True
    return isinstance(exc, ResponseError) and str(exc).startswith(("NOAUTH", "WRONGPASS"))


def _acl_rule(key: str, *, db: int = 0) -> str:
    """The ACL rule a Redis user needs for the kill switch at ``key``: the commands `read`,
    `write` and `release` send (HGETALL; DEL and HSET inside MULTI/EXEC; WATCH, and the
    UNWATCH redis-py sends when a watched release stops short), SELECT for a database other
    than 0 (sent as each connection opens), and that one key."""
    select = " +select" if db else ""
    return f"+hgetall +del +hset +multi +exec +watch +unwatch{select} ~{key}"


def _user(kwargs: Mapping[str, object]) -> str:
    """The user the URL names; Redis's ``default`` when it names none."""
    return str(kwargs.get("username") or "default")


def _credentials(kwargs: Mapping[str, object]) -> str:
    """Which credentials the URL gave, in words: the user, and whether a password was given."""
    return (
        f"user {_user(kwargs)}, {'a password' if kwargs.get('password') else 'no password'} given"
    )


def _address(kwargs: Mapping[str, object]) -> str:
    """``host:port``, or for ``unix://`` the socket's path (no host: it read as ``?:?``)."""
    if "path" in kwargs:
        return str(kwargs["path"])
    return f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}"


def _text(value: bytes | str) -> str:
    """UTF-8 text, strictly: raises UnicodeDecodeError (a ValueError) on other bytes."""
    return value.decode() if isinstance(value, bytes) else value
