"""The application-side routing client against a real Redis."""

from __future__ import annotations

import random
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator

import pytest
import redis

from jarvis.routing import NoWeightsError, RoutingClient


class Ticker:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def raw(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def ticker() -> Ticker:
    return Ticker()


@pytest.fixture
def routing(redis_url: str, ticker: Ticker) -> Iterator[RoutingClient]:
    client = RoutingClient(redis_url, max_age=5.0, monotonic=ticker)
    try:
        yield client
    finally:
        client.close()


def write(raw: redis.Redis, version: int, weights: dict[str, str]) -> None:
    raw.delete("jarvis:route:chat")
    raw.hset("jarvis:route:chat", "_version", str(version))
    for model, weight in weights.items():
        raw.hset("jarvis:route:chat", model, weight)


def seeded(seed: int) -> random.Random:
    return random.Random(seed)  # noqa: S311 - reproducible draws, not secrets


def test_choices_follow_the_weights(raw: redis.Redis, routing: RoutingClient) -> None:
    """Over many draws each model's share is close to its weight; zero weights are never drawn."""
    write(raw, 1, {"gpt-4o": "0.3", "gemini": "0.5", "claude": "0.2", "llama": "0"})
    rng = seeded(42)
    counts = Counter(routing.choose("chat", rng) for _ in range(20_000))
    assert counts["llama"] == 0
    assert counts["gemini"] / 20_000 == pytest.approx(0.5, abs=0.02)
    assert counts["gpt-4o"] / 20_000 == pytest.approx(0.3, abs=0.02)
    assert counts["claude"] / 20_000 == pytest.approx(0.2, abs=0.02)


def test_the_same_seed_draws_the_same_models(raw: redis.Redis, routing: RoutingClient) -> None:
    """A seeded rng makes choices reproducible."""
    write(raw, 1, {"gpt-4o": "0.5", "gemini": "0.5"})
    first = [routing.choose("chat", seeded(3)) for _ in range(5)]
    second = [routing.choose("chat", seeded(3)) for _ in range(5)]
    assert first == second


def test_weights_are_cached_until_max_age_then_refreshed_by_version(
    raw: redis.Redis, routing: RoutingClient, ticker: Ticker
) -> None:
    """Within max_age the cache answers; after it, a new version is read and an old one kept."""
    write(raw, 1, {"gpt-4o": "1"})
    assert routing.choose("chat") == "gpt-4o"
    write(raw, 2, {"gemini": "1"})
    ticker.now = 4.9
    assert routing.choose("chat") == "gpt-4o"
    ticker.now = 5.0
    assert routing.choose("chat") == "gemini"
    assert routing.version("chat") == "2"
    # Same version, different content: the client trusts the version and keeps its cache.
    raw.hset("jarvis:route:chat", mapping={"gemini": "0", "claude": "1"})
    ticker.now = 10.0
    assert routing.choose("chat") == "gemini"


def test_weights_written_again_under_a_version_seen_before_are_read(
    raw: redis.Redis, routing: RoutingClient, ticker: Ticker
) -> None:
    """After Redis loses its data, new weights that reach a version the client saw are read."""
    write(raw, 2, {"gpt-4o": "1"})
    raw.hset("jarvis:route:chat", "_updated_at", "2025-06-20T12:00:00+00:00")
    assert routing.choose("chat") == "gpt-4o"
    # Redis restarts empty (write deletes the hash); Jarvis seeds v1, then writes v2 again.
    write(raw, 2, {"gemini": "1"})
    raw.hset("jarvis:route:chat", "_updated_at", "2025-06-20T12:01:00+00:00")
    ticker.now = 5.0
    assert routing.choose("chat") == "gemini"


def test_a_route_hash_that_vanished_serves_the_last_known_weights(
    raw: redis.Redis, routing: RoutingClient, ticker: Ticker
) -> None:
    """A Redis that lost its data is treated like one that is away until Jarvis seeds again."""
    write(raw, 3, {"gemini": "1"})
    assert routing.choose("chat") == "gemini"
    raw.delete("jarvis:route:chat")
    ticker.now = 5.0
    assert routing.choose("chat") == "gemini"
    write(raw, 1, {"gpt-4o": "1"})
    ticker.now = 10.0
    assert routing.choose("chat") == "gpt-4o"


def test_a_route_without_weights_raises(routing: RoutingClient) -> None:
    """Asking for a route Jarvis never seeded raises NoWeightsError."""
    with pytest.raises(NoWeightsError, match="chat"):
        routing.choose("chat")


def test_unreachable_redis_serves_the_last_known_weights(
    raw: redis.Redis, redis_url: str, ticker: Ticker
) -> None:
    """When Redis stops answering, the cached weights keep being used."""
    write(raw, 1, {"claude": "1"})
    broken = redis.Redis.from_url(redis_url)
    client = RoutingClient(client=broken, max_age=1.0, monotonic=ticker)
    assert client.choose("chat") == "claude"
    broken.connection_pool = redis.ConnectionPool(host="127.0.0.1", port=1, socket_timeout=1)
    ticker.now = 2.0
    assert client.choose("chat") == "claude"
    fresh = RoutingClient(client=broken, max_age=1.0, monotonic=ticker)
    with pytest.raises(NoWeightsError, match="unreachable"):
        fresh.choose("chat")
    client.close()


def test_importing_the_client_loads_redis_but_not_sqlalchemy_or_the_daemon() -> None:
    """Applications importing jarvis.routing pay for redis alone."""
    code = (
        "import sys, jarvis.routing\n"
        "heavy = [m for m in ('sqlalchemy', 'pydantic', 'jarvis.store', 'jarvis.config',"
        " 'jarvis.model') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


def test_a_field_that_is_not_utf8_is_skipped_not_raised(
    redis_url: str, routing: RoutingClient
) -> None:
    """A hand-written field name or value that is not UTF-8 is ignored; the rest still route."""
    binary = redis.Redis.from_url(redis_url)
    try:
        binary.delete("jarvis:route:chat")
        binary.hset(
            "jarvis:route:chat",
            mapping={b"_version": b"\xff1", b"gpt-\xff": b"0.5", b"odd": b"\xfe", b"gemini": b"1"},
        )
    finally:
        binary.close()
    assert routing.weights("chat") == (("gemini", 1.0),)
    assert routing.choose("chat") == "gemini"


def test_weights_too_large_to_sum_still_split_the_traffic(
    raw: redis.Redis, routing: RoutingClient
) -> None:
    """Two huge hand-written weights whose sum overflows still share the draws equally."""
    write(raw, 1, {"gpt-4o": "1e308", "gemini": "1e308"})
    rng = seeded(7)
    counts = Counter(routing.choose("chat", rng) for _ in range(2_000))
    assert counts["gpt-4o"] / 2_000 == pytest.approx(0.5, abs=0.05)


def test_a_route_name_that_cannot_be_a_key_has_no_weights(routing: RoutingClient) -> None:
    """A route name with a lone surrogate (undecodable bytes read with surrogateescape)
    raises NoWeightsError, the error an application handles, not UnicodeEncodeError."""
    with pytest.raises(NoWeightsError, match="not valid UTF-8"):
        routing.choose("chat-\udcff")
