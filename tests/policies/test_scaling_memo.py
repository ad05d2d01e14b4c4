"""The scaling policy's memo of past recommendations never changes its answers."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from jarvis.model import History, Snapshot
from jarvis.policies.scaling import ScalingPolicy
from tests import actions as typed
from tests.policies.fleet import API, T0, TICK, service, snap

CONFIG = {"rules": [{"match": "ecs://*", "target_requests_per_minute": 100, "max_replicas": 30}]}


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 3000), min_size=2, max_size=30))
def test_a_reused_policy_answers_like_a_fresh_one(traffic: list[int]) -> None:
    """One policy across many ticks proposes exactly what a new policy per tick does."""
    reused = ScalingPolicy.from_config(CONFIG)
    snapshots: list[Snapshot] = []
    desired = 2
    for i, rpm in enumerate(traffic):
        now = T0 + TICK * i
        current = snap(
            now, service(API, desired=desired, at=now, metrics={"requests_per_minute": rpm})
        )
        history = History(snapshots=tuple(snapshots[-20:]))
        fresh = ScalingPolicy.from_config(CONFIG).evaluate(current, history, now)
        assert reused.evaluate(current, history, now) == fresh
        for action in fresh.actions:
            desired = typed.replicas(action) or desired
        snapshots.append(current)
