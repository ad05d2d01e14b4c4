"""The database and Redis URLs settings name, checked as their clients will read them.

Jarvis's own store (``database_url``) and every other database a section names
(the customers', the usage table's) go through SQLAlchemy's async engine with
the drivers Jarvis ships; every Redis URL goes to redis-py. A URL either could
not read raised a bare error where it was first used (at start, or at the first
kill-switch read), after `jarvis config check` had passed it. `plain_text` is
the check they share with the bearer tokens: no line break picked up from a file.
"""

from __future__ import annotations

import re
from ipaddress import ip_address
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator

__all__ = [
    "DatabaseUrl",
    "RedisUrl",
    "database_url",
    "https_or_loopback",
    "plain_text",
    "redis_url",
]

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def plain_text(value: str) -> str:
    """``value``, or ValueError (never quoting it: it may be a secret) when it is not UTF-8,
    holds a control character or begins or ends with whitespace.

    A value read from a file keeps the file's last newline (a Kubernetes Secret made
    ``--from-file``, ``$(cat token)`` in a unit file that was not stripped): a token that
    ends in one never matched a request, whose header is stripped; a database URL named
    the database ``"jarvis\n"``.
    """
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        # A byte the environment could not decode, kept as a lone surrogate: a token
        # with one ended `run` in a traceback when the server encoded it.
        raise ValueError("is not valid UTF-8 (a byte the environment could not decode)") from None
    if value != value.strip() or _CONTROL.search(value):
        raise ValueError(
            "must not hold control characters or begin or end with whitespace "
            "(a line break kept from the file it was read from?)"
        )
    return value


_DATABASE_URL = re.compile(
    r"[\w+]+://(?:[^:/]*(?::[^@]*)?@)?(?:(?:\[[^/?]+\]|[^/:?]+)?(?::(?P<port>[^/?]*))?)?"
)
"""SQLAlchemy's own URL grammar (`sqlalchemy.engine.url._parse_url`), for its port: a
password may hold ``#``, ``/`` or ``?`` unquoted, which `urllib.parse` would misread."""


def database_url(value: str) -> str:
    """``value``, or ValueError when SQLAlchemy's async engine with aiosqlite or asyncpg
    could not use it."""
    plain_text(value)
    if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
        raise ValueError("must start with sqlite+aiosqlite:// or postgresql+asyncpg://")
    if value.removeprefix("sqlite+aiosqlite://").partition("?")[0] in {"", "/"}:
        # SQLite's in-memory database (typically ///$UNSET_VARIABLE): every command
        # got an empty one of its own, and a kill-switch engage "succeeded" into it.
        raise ValueError("names no SQLite file: give sqlite+aiosqlite:///FILE")
    match = _DATABASE_URL.match(value)
    port = match.group("port") if match else None
    if port is not None and not (re.fullmatch("[0-9]{1,5}", port) and int(port) <= 65535):
        # SQLAlchemy (or asyncpg) raised a bare ValueError when the store opened.
        raise ValueError(f"not a valid URL: port {port!r} is not a number from 0 to 65535")
    return value


def redis_url(value: str | None) -> str | None:
    """``value`` (None or empty: no Redis), or ValueError when redis-py could not read it."""
    if not value:
        return value
    plain_text(value)
    try:
        parts = urlsplit(value)
        _ = parts.port
    except ValueError as exc:
        raise ValueError(f"not a valid URL: {exc}") from None
    if parts.scheme not in {"redis", "rediss", "unix"}:
        raise ValueError("must start with redis://, rediss:// or unix://")
    # Its query options too (``?socket_timeout=abc``): read by the parser the
    # kill switch's client uses, imported only when a Redis is configured.
    from redis.asyncio.connection import parse_url  # noqa: PLC0415

    try:
        parse_url(value)
    except ValueError as exc:
        raise ValueError(f"not a valid URL: {exc}") from None
    return value


def https_or_loopback(url: str) -> bool:
    """Whether ``url`` is https, or http to this machine (a trial, a test's stand-in).

    For a URL that carries a secret or a promise: a bearer token sent over plain
    http crosses the network in clear, and mail clients post RFC 8058's
    one-click unsubscribe to https only.
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname
        _ = parts.port  # a port that is not a number raises here
    except ValueError:
        return False
    if not host:
        return False
    if parts.scheme == "https":
        return True
    return parts.scheme == "http" and _loopback(host)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


DatabaseUrl = Annotated[str, AfterValidator(database_url)]
RedisUrl = Annotated[str | None, AfterValidator(redis_url)]
