"""A resource's shard is a stable hash of its URI: the same on every replica and every run."""

from __future__ import annotations

from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

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


@given(
    # Joined by hand: `st.text` leaves lone surrogates out of any alphabet.
    st.lists(
        st.one_of(st.characters(), st.sampled_from(["\ud800", "\udfff", "\x00"])), max_size=60
    ).map("".join),
    st.integers(1, 64),
)
def test_every_name_a_provider_can_report_has_a_shard(name: str, shards: int) -> None:
    """A NUL or a lone surrogate in a name is hashed, not raised: a replica asks every
    observed URI its shard, so one such name would stop each of its ticks."""
    assert 0 <= shard_of(f"sim://{name}", shards) < shards
