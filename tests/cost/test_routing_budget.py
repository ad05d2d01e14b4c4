"""The routing client's time budget: a slow or silent Redis costs a request little, not seconds."""

from __future__ import annotations

import threading
import time

import pytest

from jarvis.routing import NoWeightsError, RoutingClient
from tests.cost.toy_redis import toy_redis

ROUTES = [f"route-{n}" for n in range(5)]


class Ticker:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_silent_redis_costs_each_route_its_budget_not_seconds() -> None:
    """A Redis that accepts and never answers: five routes fall back in well under 1 s each."""
    with toy_redis() as server:
        server.silent = True
        client = RoutingClient(server.url)
        try:
            started = time.monotonic()
            for route in ROUTES:
                with pytest.raises(NoWeightsError, match="unreachable"):
                    client.choose(route)
            # The budget is 0.5 s a choose; the old client took at least 1 s a route.
            assert time.monotonic() - started < 4.0
        finally:
            client.close()


def test_a_slow_redis_is_given_up_on_and_the_cached_weights_serve() -> None:
    """Redis slowing to 0.8 s a reply: the cached weights answer, without waiting for it."""
    ticker = Ticker()
    with toy_redis() as server:
        server.hashes["jarvis:route:chat"] = {"_version": "1", "claude": "1"}
        client = RoutingClient(server.url, max_age=1.0, monotonic=ticker)
        fresh = RoutingClient(server.url)
        try:
            assert client.choose("chat") == "claude"
            server.delay = 0.8
            ticker.now = 2.0
            started = time.monotonic()
            assert client.choose("chat") == "claude"
            # A new connection: the old client waited for each handshake reply, then
            # HGETALL's (4 s in all, with the 0.8 s above), and answered "no weights".
            with pytest.raises(NoWeightsError, match="unreachable"):
                fresh.choose("chat")
            assert time.monotonic() - started < 2.0
        finally:
            client.close()
            fresh.close()


def test_a_redis_that_comes_back_is_used_again() -> None:
    """After falling back, the client reads Redis again once max_age has passed."""
    ticker = Ticker()
    with toy_redis() as server:
        server.hashes["jarvis:route:chat"] = {"_version": "1", "claude": "1"}
        client = RoutingClient(server.url, max_age=1.0, monotonic=ticker)
        try:
            assert client.choose("chat") == "claude"
            server.silent = True
            ticker.now = 2.0
            assert client.choose("chat") == "claude"
            server.hashes["jarvis:route:chat"] = {"_version": "2", "gemini": "1"}
            server.silent = False
            ticker.now = 4.0
            assert client.choose("chat") == "gemini"
            assert client.version("chat") == "2"
        finally:
            client.close()


def test_a_full_connection_pool_falls_back_at_once() -> None:
    """With the pooled connection stuck on a silent Redis, another choose falls back at once."""
    with toy_redis() as server:
        server.silent = True
        client = RoutingClient(f"{server.url}?max_connections=1")
        errors: list[BaseException] = []

        def stuck() -> None:
            try:
                client.choose("chat")
            except NoWeightsError as exc:
                errors.append(exc)

        try:
            holder = threading.Thread(target=stuck)
            started = time.monotonic()
            holder.start()
            with pytest.raises(NoWeightsError):
                client.choose("other")
            holder.join(timeout=30)
            assert len(errors) == 1
            assert time.monotonic() - started < 2.5
        finally:
            client.close()


def test_with_nothing_cached_a_silent_redis_is_asked_once_per_max_age() -> None:
    """After a failed read with no weights to fall back on, requests within max_age fail
    at once instead of each paying the budget and opening a connection."""
    ticker = Ticker()
    with toy_redis() as server:
        server.silent = True
        client = RoutingClient(server.url, max_age=5.0, monotonic=ticker)
        try:
            for _ in range(10):
                with pytest.raises(NoWeightsError, match="unreachable"):
                    client.choose("chat")
            assert server.connections <= 1  # (the accept thread may not have counted it yet)
            server.hashes["jarvis:route:chat"] = {"_version": "1", "claude": "1"}
            server.silent = False
            ticker.now = 5.0
            assert client.choose("chat") == "claude"
        finally:
            client.close()


@pytest.mark.parametrize("timeout", [0.0, -1.0, float("nan"), float("inf"), 1e300])
def test_a_timeout_that_is_no_budget_is_refused_at_construction(timeout: float) -> None:
    """Zero, negative, NaN, infinite or absurd budgets raise ValueError when the client is
    made, not OverflowError from the socket on the first choose."""
    with pytest.raises(ValueError, match="timeout"):
        RoutingClient("redis://127.0.0.1:1/0", timeout=timeout)


def test_timeouts_in_the_url_do_not_override_the_budget() -> None:
    """A URL carrying its own socket timeouts (copied from another client's settings)
    still gets the budget: a silent Redis costs well under its 5 s."""
    with toy_redis() as server:
        server.silent = True
        query = "socket_timeout=5&socket_connect_timeout=5&retry_on_timeout=true"
        client = RoutingClient(f"{server.url}?{query}")
        try:
            started = time.monotonic()
            with pytest.raises(NoWeightsError, match="unreachable"):
                client.choose("chat")
            assert time.monotonic() - started < 3.0
        finally:
            client.close()
