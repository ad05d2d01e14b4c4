"""Each pytest-xdist worker flushes a Redis database of its own (`tests.conftest`)."""

from __future__ import annotations

import pytest

from tests.conftest import redis_database_url


def test_a_serial_run_uses_the_configured_database() -> None:
    """Without a worker the URL is the configured one, unchanged."""
    assert redis_database_url("redis://127.0.0.1:6379/15", None) == "redis://127.0.0.1:6379/15"


def test_workers_count_down_from_below_the_serial_database() -> None:
    """gw0 takes 14, gw1 13, ...: no worker shares the serial run's 15, nor another's."""
    urls = [redis_database_url("redis://127.0.0.1:6379/15", f"gw{n}") for n in range(15)]
    assert urls[:2] == ["redis://127.0.0.1:6379/14", "redis://127.0.0.1:6379/13"]
    assert len(set(urls)) == 15
    assert "redis://127.0.0.1:6379/15" not in urls


def test_a_configured_url_keeps_its_server_and_wraps_past_zero() -> None:
    """JARVIS_TEST_REDIS_URL's host, password and options stay; below 0 comes 15."""
    base = "redis://:pw@cache:6380/0?socket_timeout=5"
    assert redis_database_url(base, "gw0") == "redis://:pw@cache:6380/15?socket_timeout=5"
    assert redis_database_url("redis://cache:6380", "gw1") == "redis://cache:6380/14"


def test_more_workers_than_databases_is_refused_with_the_reason() -> None:
    """A 16th worker would share a database: it fails naming the limit, not flakily later."""
    with pytest.raises(ValueError, match="16 databases"):
        redis_database_url("redis://127.0.0.1:6379/15", "gw15")
