"""Each test process flushes a Redis database of its own (`tests.conftest`): a worker by
its number, and a run claims it against other runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import claimed_redis_database, redis_database_url

#: A child process holding a claim until its stdin closes; it prints the URL once it holds it.
HOLD = """
import sys
from pathlib import Path
from tests.conftest import claimed_redis_database
with claimed_redis_database(sys.argv[2], Path(sys.argv[1])) as url:
    print(url, flush=True)
    sys.stdin.read()
"""


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


def test_two_claims_at_once_get_different_databases(tmp_path: Path) -> None:
    """A second run while the first holds 15 gets 14; a third, 13."""
    url = "redis://127.0.0.1:6379/15"
    with (
        claimed_redis_database(url, tmp_path) as first,
        claimed_redis_database(url, tmp_path) as second,
        claimed_redis_database(url, tmp_path) as third,
    ):
        assert [first, second, third] == [
            "redis://127.0.0.1:6379/15",
            "redis://127.0.0.1:6379/14",
            "redis://127.0.0.1:6379/13",
        ]


def test_a_claim_held_by_another_process_is_passed_by(tmp_path: Path) -> None:
    """The claim is between processes: one held by a child process is not taken here."""
    url = "redis://127.0.0.1:6379/15"
    with subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path), url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    ) as holder:
        assert holder.stdin is not None and holder.stdout is not None
        held = holder.stdout.readline().strip()  # once the child holds its claim
        try:
            with claimed_redis_database(url, tmp_path) as mine:
                assert (held, mine) == (url, "redis://127.0.0.1:6379/14")
        finally:
            holder.stdin.close()  # the child's signal to release and exit
            holder.wait(timeout=30)


def test_a_released_claim_is_taken_again(tmp_path: Path) -> None:
    """Once a run ends its claim, the next run gets that database back."""
    url = "redis://127.0.0.1:6379/15"
    with claimed_redis_database(url, tmp_path) as first:
        pass
    with claimed_redis_database(url, tmp_path) as again:
        assert again == first == url


def test_a_claim_keeps_the_server_and_wraps_past_zero(tmp_path: Path) -> None:
    """Another server's databases are its own locks; past 0 comes 15."""
    with (
        claimed_redis_database("redis://cache:6380/0", tmp_path) as first,
        claimed_redis_database("redis://cache:6380/0", tmp_path) as second,
        claimed_redis_database("redis://127.0.0.1:6379/0", tmp_path) as other,
    ):
        assert [first, second, other] == [
            "redis://cache:6380/0",
            "redis://cache:6380/15",
            "redis://127.0.0.1:6379/0",
        ]


def test_a_lock_file_that_cannot_be_opened_is_passed_by(tmp_path: Path) -> None:
    """A lock another user created (unwritable here) passes to the next index, not a
    traceback: a directory in its place stands in for it, since root ignores modes."""
    (tmp_path / "jarvis-test-redis-127.0.0.1-6379-15.lock").mkdir()
    with claimed_redis_database("redis://127.0.0.1:6379/15", tmp_path) as mine:
        assert mine == "redis://127.0.0.1:6379/14"
