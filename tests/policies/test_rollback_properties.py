"""Properties of the rollback policy over generated version histories."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st

from jarvis.model import Event, EventKind, Health, History
from jarvis.policies.rollback import RollbackPolicy
from tests import actions as typed
from tests.policies.fleet import T0, changed, rollback_event, service, snap

versions = st.sampled_from(["v0", "v1", "v2", "v3"])
deploy = st.tuples(
    st.just("deploy"),
    versions,
    st.sampled_from([Health.HEALTHY, Health.HEALTHY, Health.UNHEALTHY, Health.DEGRADED]),
    st.sampled_from(["in_progress", "completed", "completed", "failed", None]),
)
rollback = st.tuples(
    st.just("rollback"),
    versions,
    st.sampled_from(
        [EventKind.ACTION_APPLIED, EventKind.ACTION_FAILED, EventKind.ACTION_ESCALATED]
    ),
    st.none(),
)


Op = tuple[str, str, Health | EventKind, str | None]


def to_events(ops: list[Op]) -> tuple[list[Event], set[str]]:
    """The ops as events, oldest first, and the versions a rollback was applied away from."""
    events: list[Event] = []
    bad: set[str] = set()
    current: str | None = None
    previous: str | None = None
    for index, (op, version, detail, rollout) in enumerate(ops):
        at = T0 - timedelta(minutes=len(ops) - index)
        if op == "deploy":
            assert isinstance(detail, Health)
            events.append(changed(at, version, health=detail, rollout=rollout, previous=previous))
            previous, current = current, version
        else:
            assert isinstance(detail, EventKind)
            events.append(rollback_event(detail, at, version))
            if detail is EventKind.ACTION_APPLIED and current is not None:
                bad.add(current)
    return events, bad


@given(
    ops=st.lists(st.one_of(deploy, rollback), max_size=12),
    version=versions,
    health=st.sampled_from(list(Health)),
    attributes=st.fixed_dictionaries(
        {"rollout": st.sampled_from(["in_progress", "completed", "failed", "failed"])},
        optional={
            "previous_version": versions,
            "versions_available": st.lists(versions, max_size=4),
            "crash_looping": st.booleans(),
        },
    ),
)
def test_never_targets_the_running_version_or_a_bad_one(
    ops: list[Op],
    version: str,
    health: Health,
    attributes: dict[str, object],
) -> None:
    """Whatever the history, a rollback targets neither the running nor a rolled-back version."""
    events, bad = to_events(ops)
    state = service(version=version, health=health, attributes=attributes)
    evaluation = RollbackPolicy().evaluate(snap(T0, state), History(events=tuple(events)), T0)
    for action in evaluation.actions:
        assert typed.version(action) is not None
        assert typed.version(action) != version
        assert typed.version(action) not in bad
        available = attributes.get("versions_available")
        if isinstance(available, list) and available:
            assert typed.version(action) in available
