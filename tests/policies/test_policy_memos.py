"""The policies' memos never change an answer: a reused policy answers like a fresh one."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from jarvis.model import Event, EventKind, Health, History, ResourceState, Snapshot
from jarvis.policies.rollback import RollbackPolicy
from jarvis.policies.rollouts import RolloutHistory, RolloutIndex
from jarvis.policies.scaling import ScalingPolicy
from tests.policies.fleet import T0, TICK, changed, rollback_event, service, snap

URIS = ("ecs://prod/api", "ecs://prod/web", "k8s://default/worker")

event_ops = st.lists(
    st.tuples(
        st.sampled_from(URIS),
        st.sampled_from(["v1", "v2", "v3"]),
        st.sampled_from(
            [
                EventKind.RESOURCE_CHANGED,
                EventKind.RESOURCE_CHANGED,
                EventKind.ACTION_APPLIED,
                EventKind.ACTION_FAILED,
                EventKind.ACTION_ESCALATED,
            ]
        ),
        st.sampled_from([Health.HEALTHY, Health.UNHEALTHY]),
        # The action's kind: a rollback's outcome, or another action's, which no read looks at.
        st.sampled_from(["rollback", "rollback", "scale"]),
    ),
    max_size=40,
)
#: How the event window moves each tick: (events dropped at the front, events
#: added at the back), or None for a window that does not continue the last one.
moves = st.lists(
    st.one_of(st.tuples(st.integers(0, 4), st.integers(0, 6)), st.none()), min_size=1, max_size=15
)


Op = tuple[str, str, EventKind, Health, str]


def to_events(ops: list[Op]) -> list[Event]:
    events = []
    for index, (uri, version, kind, health, action) in enumerate(ops):
        at = T0 + timedelta(seconds=index)
        if kind is EventKind.RESOURCE_CHANGED:
            events.append(changed(at, version, uri=uri, health=health))
        elif action == "rollback":
            events.append(rollback_event(kind, at, version, uri=uri))
        else:
            scaled = rollback_event(kind, at, version, uri=uri)
            events.append(replace(scaled, action_kind=action, idempotency_key=f"{action}:{at}"))
    return events


def windows(log: list[Event], steps: list[tuple[int, int] | None]) -> list[tuple[Event, ...]]:
    """The event windows a reconciler would pass, tick after tick, as ``steps`` move them."""
    out: list[tuple[Event, ...]] = []
    start = end = 0
    for step in steps:
        if step is None:  # a window unrelated to the last: every other event
            out.append(tuple(log[start:end:2]))
            continue
        start, end = min(start + step[0], len(log)), min(end + step[1], len(log))
        start = min(start, end)
        out.append(tuple(log[start:end]))
    return out


@settings(max_examples=300)
@given(ops=event_ops, steps=moves)
def test_the_rollout_index_reads_like_a_fresh_read(
    ops: list[Op], steps: list[tuple[int, int] | None]
) -> None:
    """However the window moves, each resource's history is the one read from scratch."""
    index = RolloutIndex()
    for window in windows(to_events(ops), steps):
        index.update(window)
        for uri in URIS:
            own = [event for event in window if event.resource == uri]
            # None when a read would look at none of them (it would be empty).
            looked_at = [
                e
                for e in own
                if e.kind is EventKind.RESOURCE_CHANGED or e.action_kind == "rollback"
            ]
            expected = RolloutHistory.read(uri, own) if looked_at else None
            if expected is None and own:
                assert RolloutHistory.read(uri, own) == RolloutHistory(uri=uri)
            assert index.history(uri) == expected


def test_events_no_read_looks_at_leave_the_history_alone() -> None:
    """A scaling outcome entering or leaving the window neither reads again nor cuts a list."""
    api = URIS[0]
    ops: list[Op] = [
        (api, "v1", EventKind.ACTION_APPLIED, Health.HEALTHY, "scale"),
        (api, "v2", EventKind.RESOURCE_CHANGED, Health.HEALTHY, "rollback"),
        (api, "v3", EventKind.RESOURCE_CHANGED, Health.HEALTHY, "rollback"),
        (api, "v3", EventKind.ACTION_APPLIED, Health.HEALTHY, "scale"),
    ]
    events = to_events(ops)
    index = RolloutIndex()
    index.update(events[:3])
    read = index.history(api)
    assert read == RolloutHistory.read(api, events[:3])
    index.update(events[1:4])  # the first scaling outcome leaves, another arrives
    assert index.history(api) is read
    assert read is not None and read.good == ["v2", "v3"] and "v3" in read.changes
    index.update(events[3:4])
    assert index.history(api) is None  # nothing left that a read looks at


@given(ops=event_ops, steps=moves, rollouts=st.lists(st.sampled_from(["failed", "completed"])))
def test_a_reused_rollback_policy_answers_like_a_fresh_one(
    ops: list[Op],
    steps: list[tuple[int, int] | None],
    rollouts: list[str],
) -> None:
    """One rollback policy across sliding event windows proposes what a new one does."""
    reused = RollbackPolicy(watch_seconds=60)
    snapshots: list[Snapshot] = []
    for tick, window in enumerate(windows(to_events(ops), steps)):
        now = T0 + TICK * tick
        states = [
            service(
                uri,
                at=now,
                version=f"v{(tick + i) % 3 + 1}",
                health=Health.UNHEALTHY if (tick + i) % 4 == 0 else Health.HEALTHY,
                attributes={"rollout": rollouts[(tick + i) % len(rollouts)]} if rollouts else {},
                metrics={"error_rate": 0.01 * ((tick * 7 + i) % 5)},
            )
            for i, uri in enumerate(URIS)
        ]
        current = snap(now, *states)
        history = History(snapshots=tuple(snapshots[-20:]), events=window)
        fresh = RollbackPolicy(watch_seconds=60).evaluate(current, history, now)
        assert reused.evaluate(current, history, now) == fresh
        snapshots.append(current)


observation = st.tuples(
    st.one_of(st.integers(0, 4000).map(float), st.just(math.nan), st.none()),
    st.integers(0, 12),  # desired replicas; 0 is a paused service
    st.sampled_from([(None, None), (2, None), (None, 6), (5, 3)]),  # provider min, max
    st.sampled_from([0, 0, 0, 100, 200]),  # seconds the metrics are old (the limit: 120)
)

SCALING = {
    "rules": [
        {"match": "ecs://prod/web", "target_cpu_utilization": 60, "min_replicas": 2},
        {"match": "ecs://*", "target_requests_per_minute": 100, "max_replicas": 30},
        {"match": "k8s://*", "target_cpu_utilization": 70, "target_requests_per_minute": 500},
    ]
}


def observed(
    uri: str, now: timedelta, seen: tuple[float | None, int, tuple[int | None, int | None], int]
) -> ResourceState:
    value, desired, (low, high), age = seen
    metrics = {} if value is None else {"requests_per_minute": value, "cpu_utilization": value / 40}
    return service(
        uri,
        desired=desired,
        at=T0 + now - timedelta(seconds=age),
        metrics=metrics,
        provider_min=low,
        provider_max=high,
    )


@settings(max_examples=150, deadline=None)
@given(
    ticks=st.lists(st.lists(observation, min_size=3, max_size=3), min_size=6, max_size=25),
    late=st.lists(st.booleans(), max_size=25),
)
def test_a_reused_scaling_policy_answers_like_a_fresh_one_across_a_fleet(
    ticks: list[list[tuple[float | None, int, tuple[int | None, int | None], int]]],
    late: list[bool],
) -> None:
    """Several services, bad metrics, provider bounds and late clocks: memos change nothing."""
    reused = ScalingPolicy.from_config(SCALING)
    snapshots: list[Snapshot] = []
    for index, seen in enumerate(ticks):
        taken = TICK * index
        current = Snapshot(
            taken_at=T0 + taken,
            resources={uri: observed(uri, taken, one) for uri, one in zip(URIS, seen, strict=True)},
        )
        # Now and then the policy is asked later than the snapshot was taken.
        now = T0 + taken + (TICK if index < len(late) and late[index] else timedelta())
        history = History(snapshots=tuple(snapshots[-12:]))
        fresh = ScalingPolicy.from_config(SCALING).evaluate(current, history, now)
        assert reused.evaluate(current, history, now) == fresh
        snapshots.append(current)
