"""The application side of LLM routing: pick a model by the weights Jarvis sets.

Imported by the product's services, not by Jarvis itself; it depends on
`redis` alone, so an application does not pull in the daemon. Jarvis's
routing actuator (`jarvis.actuators.llm.routing`) writes one hash per route,
``<prefix><route>``: model → weight, plus ``_version`` bumped on every write.
The client caches a route's weights for ``max_age`` seconds; after that, one
HMGET of ``_version`` and ``_updated_at`` tells whether to re-read the hash. If Redis is down, the
last weights it saw keep being used.

A `choose` that asks Redis waits on it for at most ``timeout`` seconds (0.5 by
default), then falls back (the last weights, or NoWeightsError): it is on the
path of an application's request. Socket timeouts are the only clock a
blocking redis-py call has, so the budget is shared out: one fifth each for the
connect and for each of at most four replies (HELLO and SELECT on a new
connection, HMGET and HGETALL), and nothing is retried (redis-py would retry a
failed command, with back-off, on a client built by its constructor). A client
passed in keeps its own timeouts and retries; the URL's own ``socket_timeout``
and retry options are dropped. Resolving the URL's host name is outside the
budget: no socket timeout covers getaddrinfo. After a failed read, Redis is
asked about that route again only after ``max_age``, with or without weights
to fall back on. A route's hash that has gone since it was read (a Redis
restarted without its data) is treated like a Redis that is away.

    client = RoutingClient("redis://cache:6379/0")
    model = client.choose("chat")
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

__all__ = ["DEFAULT_PREFIX", "DEFAULT_TIMEOUT", "NoWeightsError", "RoutingClient"]

DEFAULT_PREFIX = "jarvis:route:"
DEFAULT_TIMEOUT = 0.5
"""Seconds one `choose` may wait on Redis before it falls back."""
_MAX_TIMEOUT = 60.0
"""A budget on a request's path; more (or infinity) overflows the socket's timeout."""
_WAITS = 5
"""Socket waits one refresh may need: connect, HELLO, SELECT, HMGET, HGETALL."""


class NoWeightsError(LookupError):
    """The route has no usable weights (never seeded, or Redis unreachable and nothing cached)."""


@dataclass(frozen=True, slots=True)
class _Entry:
    version: str
    updated_at: str | None
    """The write's ``_updated_at``: with ``_version``, what names one write."""
    weights: tuple[tuple[str, float], ...]
    checked_at: float


class RoutingClient:
    """Picks a model per route by Jarvis's current weights (see the module docstring)."""

    def __init__(
        self,
        redis_url: str | None = None,
        *,
        client: redis.Redis | None = None,
        prefix: str = DEFAULT_PREFIX,
        max_age: float = 5.0,
        timeout: float = DEFAULT_TIMEOUT,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if client is None:
            if redis_url is None:
                raise ValueError("give a redis_url or a client")
            if not 0 < timeout <= _MAX_TIMEOUT:
                raise ValueError(
                    f"timeout must be above 0 and at most {_MAX_TIMEOUT:g} s, not {timeout}"
                )
            wait = timeout / _WAITS
            client = redis.Redis.from_url(
                _without(redis_url, _BUDGET_OPTIONS),
                socket_connect_timeout=wait,
                socket_timeout=wait,
                retry=Retry(NoBackoff(), 0),
                # No CLIENT SETINFO: two more replies to wait for on every new connection.
                driver_info=None,
            )
        self._redis = client
        self._prefix = prefix
        self._max_age = max_age
        self._monotonic = monotonic
        self._cache: dict[str, _Entry] = {}
        self._failed: dict[str, tuple[float, str]] = {}
        """Per route with nothing cached, when reading it last failed, and why."""
        self._lock = threading.Lock()

    def choose(self, route: str, rng: random.Random | None = None) -> str:
        """A model for one request on ``route``, drawn by weight; NoWeightsError if none."""
        weights = [(m, w) for m, w in self.weights(route) if w > 0]
        if not weights:
            raise NoWeightsError(f"route {route!r} has no model with a positive weight")
        # Relative to the largest, so a hand-written 1e308 cannot overflow the sum to inf.
        largest = max(w for _, w in weights)
        weights = [(m, w / largest) for m, w in weights]
        point = (rng or random).random() * sum(w for _, w in weights)
        for model, weight in weights:
            point -= weight
            if point < 0:
                return model
        return weights[-1][0]

    def weights(self, route: str) -> tuple[tuple[str, float], ...]:
        """The route's weights as (model, weight) pairs sorted by model, at most max_age old."""
        now = self._monotonic()
        with self._lock:
            entry = self._cache.get(route)
            failed = self._failed.get(route)
        if entry is not None and now - entry.checked_at < self._max_age:
            return entry.weights
        if entry is None and failed is not None and now - failed[0] < self._max_age:
            # As with cached weights, Redis is asked again after max_age, not on every
            # request: each would pay the time budget and a connection to a sick Redis.
            raise NoWeightsError(f"route {route!r}: redis unreachable: {failed[1]}")
        try:
            fresh = self._refresh(route, entry, now)
        except RedisError as exc:
            if entry is None:
                with self._lock:
                    self._failed[route] = (now, str(exc))
                raise NoWeightsError(f"route {route!r}: redis unreachable: {exc}") from exc
            # Serve the last known weights, and wait max_age before asking again.
            fresh = _Entry(entry.version, entry.updated_at, entry.weights, now)
        with self._lock:
            self._cache[route] = fresh
            self._failed.pop(route, None)
        return fresh.weights

    def version(self, route: str) -> str | None:
        """The version of the weights last read for ``route``, if any."""
        entry = self._cache.get(route)
        return None if entry is None else entry.version

    def _refresh(self, route: str, entry: _Entry | None, now: float) -> _Entry:
        key = f"{self._prefix}{route}"
        try:
            key.encode()
        except UnicodeEncodeError:
            # A name from undecodable input (surrogateescape): no key can hold its weights.
            raise NoWeightsError(f"route {route!r} is not valid UTF-8") from None
        if entry is not None:
            # The version alone repeats after Redis loses its data (Jarvis seeds v1
            # again and counts up), and the client kept the old weights of a
            # version it had seen; the write's time tells the two writes apart.
            version, updated_at = self._redis.hmget(key, ["_version", "_updated_at"])
            if (
                version is not None
                and _text(version) == entry.version
                and _optional_text(updated_at) == entry.updated_at
            ):
                return _Entry(entry.version, entry.updated_at, entry.weights, now)
        raw = self._redis.hgetall(key)
        if not raw and entry is not None:
            # The hash is gone: a Redis restarted without its data, until Jarvis
            # seeds the route again (a tick). That is a Redis away, not a route
            # with no weights; every request raised NoWeightsError meanwhile.
            return _Entry(entry.version, entry.updated_at, entry.weights, now)
        fields = {_text(k): _text(v) for k, v in raw.items()}
        weights = []
        for model, text in sorted(fields.items()):
            if model.startswith("_") or _UNDECODABLE in model:
                continue
            try:
                weight = float(text)
            except ValueError:
                continue
            if math.isfinite(weight) and weight >= 0:
                weights.append((model, weight))
        return _Entry(fields.get("_version", "0"), fields.get("_updated_at"), tuple(weights), now)

    def close(self) -> None:
        self._redis.close()


_BUDGET_OPTIONS = frozenset(
    {"socket_timeout", "socket_connect_timeout", "retry_on_timeout", "retry_on_error"}
)
"""URL options redis-py would let override the budget (its query string wins over arguments)."""


def _without(url: str, options: frozenset[str]) -> str:
    # By hand, not urlsplit: the rest of the URL (a unix:// path, a quoted password)
    # must reach redis-py exactly as given.
    base, mark, query = url.partition("?")
    kept = [part for part in query.split("&") if part.partition("=")[0] not in options]
    return f"{base}?{'&'.join(kept)}" if mark and kept else base


_UNDECODABLE = "\ufffd"
"""What `_text` puts for bytes that are not UTF-8: such a model name is nobody's model."""


def _optional_text(value: bytes | str | None) -> str | None:
    return None if value is None else _text(value)


def _text(value: bytes | str) -> str:
    # A hand-edited hash may hold any bytes; raising here would reach the application.
    return value.decode(errors="replace") if isinstance(value, bytes) else value
