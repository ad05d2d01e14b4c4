"""A resource's shard is a stable hash of its URI: the same on every replica and every run."""

from __future__ import annotations

from collections import Counter

from jarvis.config import load_settings
from jarvis.loop.shards import shard_name, shard_of

PINNED = [5, 7, 3, 2, 1]


def test_the_shard_of_a_uri_is_pinned_not_salted() -> None:
    # Python's own hash() is salted per process; replicas must agree, so it is pinned here.
    assert [shard_of(f"sim://svc-{i:05d}", 8) for i in range(5)] == PINNED
    assert shard_name(3) == "shard-3"


def test_shards_spread_a_fleet_evenly() -> None:
    counts = Counter(shard_of(f"ecs://prod/svc-{i}", 16) for i in range(16_000))
    assert set(counts) == set(range(16))
    assert max(counts.values()) < 1.1 * 1000
    assert min(counts.values()) > 0.9 * 1000


def test_one_shard_is_the_default() -> None:
    assert load_settings(None).loop.shards == 1
