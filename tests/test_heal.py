"""The heal policy: which resources get a restart, with what reason, in what order."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jarvis.model import (
    ActionKind,
    Health,
    History,
    Replicas,
    ResourceRef,
    ResourceState,
    RetryState,
    Rollout,
    RolloutState,
    Snapshot,
)
from jarvis.policies.heal import RESTARTABLE_KINDS, HealPolicy

NOW = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


def state(
    uri: str,
    health: Health,
    *,
    kind: str = "service",
    detail: str = "",
    replicas: Replicas | None = None,
    rollout: RolloutState | None = None,
) -> ResourceState:
    return ResourceState(
        ResourceRef.parse(uri, kind),
        health,
        NOW,
        replicas,
        detail=detail,
        rollout=None if rollout is None else Rollout(rollout),
    )


def snapshot(*states: ResourceState) -> Snapshot:
    return Snapshot(NOW, {str(s.ref): s for s in states})


def targets(policy: HealPolicy, snap: Snapshot) -> list[str]:
    return [str(action.target) for action in policy.evaluate(snap, History(), NOW).actions]


@pytest.mark.parametrize(
    ("health", "kind", "restart_degraded", "restarted"),
    [
        (Health.UNHEALTHY, "service", False, True),
        (Health.UNHEALTHY, "deployment", False, True),
        (Health.UNHEALTHY, "probe", False, False),
        (Health.UNHEALTHY, "route", True, False),
        (Health.UNHEALTHY, "cost", False, False),
        (Health.DEGRADED, "service", False, False),
        (Health.DEGRADED, "service", True, True),
        (Health.DEGRADED, "probe", True, False),
        (Health.HEALTHY, "service", True, False),
        (Health.UNKNOWN, "service", True, False),
    ],
)
def test_which_resources_get_a_restart(
    health: Health, kind: str, restart_degraded: bool, restarted: bool
) -> None:
    """Only broken restartable kinds are restarted; degraded ones only with the flag."""
    policy = HealPolicy(restart_degraded=restart_degraded)
    snap = snapshot(state("sim://a", health, kind=kind))
    assert targets(policy, snap) == (["sim://a"] if restarted else [])


def test_reason_says_what_was_seen() -> None:
    """The restart's reason carries the health, the provider's detail and the replica counts."""
    crashed = state(
        "sim://ai-dawg-vocal-coach",
        Health.UNHEALTHY,
        detail="CrashLoopBackOff: exit code 137",
        replicas=Replicas(desired=3, running=0),
    )
    (action,) = HealPolicy().evaluate(snapshot(crashed), History(), NOW).actions
    assert action.kind == ActionKind.RESTART
    assert action.policy == "heal"
    assert action.target == crashed.ref
    assert action.reason == "unhealthy: CrashLoopBackOff: exit code 137; 0 of 3 replicas running"


def test_reason_without_detail_or_replicas_still_reads() -> None:
    """A resource with no detail and no replica counts still gets a readable reason."""
    bare = state("k8s://default/api", Health.UNHEALTHY, kind="deployment")
    (action,) = HealPolicy().evaluate(snapshot(bare), History(), NOW).actions
    assert action.reason == "unhealthy: no detail reported"


@pytest.mark.parametrize(
    ("health", "rollout", "restarted"),
    [
        (Health.DEGRADED, RolloutState.IN_PROGRESS, False),
        (Health.DEGRADED, RolloutState.COMPLETED, True),
        (Health.DEGRADED, RolloutState.FAILED, True),
        (Health.DEGRADED, None, True),
        (Health.UNHEALTHY, RolloutState.IN_PROGRESS, True),
        (Health.UNHEALTHY, RolloutState.FAILED, True),
    ],
)
def test_a_degraded_rollout_in_progress_is_left_to_finish(
    health: Health, rollout: RolloutState | None, restarted: bool
) -> None:
    """With restart_degraded, a resource DEGRADED because its new version is still rolling
    out is not restarted (that would start the rollout over); a finished or failed rollout
    that left it degraded is, and an UNHEALTHY one always is."""
    snap = snapshot(state("k8s://default/api", health, kind="deployment", rollout=rollout))
    restarted_uris = targets(HealPolicy(restart_degraded=True), snap)
    assert restarted_uris == (["k8s://default/api"] if restarted else [])


def test_unhealthy_restarts_outrank_degraded_ones() -> None:
    """A restart of a service that is down carries a higher priority than of one degraded."""
    policy = HealPolicy(restart_degraded=True)
    snap = snapshot(state("sim://down", Health.UNHEALTHY), state("sim://slow", Health.DEGRADED))
    priority = {str(a.target): a.priority for a in policy.evaluate(snap, History(), NOW).actions}
    assert priority["sim://down"] > priority["sim://slow"] > 0


def test_proposals_are_sorted_by_resource() -> None:
    """Proposals come out in resource URI order whatever order the snapshot holds them in."""
    snap = snapshot(
        state("sim://zeta", Health.UNHEALTHY),
        state("ecs://prod/api", Health.UNHEALTHY),
        state("sim://alpha", Health.UNHEALTHY),
    )
    assert targets(HealPolicy(), snap) == ["ecs://prod/api", "sim://alpha", "sim://zeta"]


def test_quarantined_resources_are_still_proposed() -> None:
    """Quarantine is the guard's to enforce: a quarantined crashed service is still proposed."""
    crashed = state("sim://ai-dawg-ai-brain", Health.UNHEALTHY)
    history = History(
        retries={
            ("sim://ai-dawg-ai-brain", "restart"): RetryState(
                "sim://ai-dawg-ai-brain", "restart", consecutive_failures=3, quarantined=True
            )
        }
    )
    actions = HealPolicy().evaluate(snapshot(crashed), history, NOW).actions
    assert [str(a.target) for a in actions] == ["sim://ai-dawg-ai-brain"]


def test_a_healthy_fleet_gets_no_proposals_and_no_notes() -> None:
    """Nothing broken, nothing proposed and nothing noted."""
    snap = snapshot(state("sim://a", Health.HEALTHY), state("sim://b", Health.HEALTHY))
    assert HealPolicy(restart_degraded=True).evaluate(snap, History(), NOW).actions == ()


_names = st.text(alphabet="abcdef-/", min_size=1, max_size=6)
_states = st.builds(
    ResourceState,
    ref=st.builds(
        ResourceRef,
        provider=st.sampled_from(["sim", "ecs", "k8s", "probe"]),
        name=_names,
        kind=st.sampled_from(["service", "deployment", "probe", "route", "cost"]),
    ),
    health=st.sampled_from(list(Health)),
    observed_at=st.just(NOW),
    replicas=st.none() | st.builds(Replicas, st.integers(0, 20), st.integers(0, 20)),
    detail=st.text(max_size=20),
    rollout=st.none() | st.builds(Rollout, st.sampled_from(list(RolloutState))),
)
# Keys are drawn independently of the states' refs, so the property also covers
# a snapshot that holds one resource under two keys.
_snapshots = st.builds(
    Snapshot,
    taken_at=st.just(NOW),
    resources=st.dictionaries(st.text(max_size=8), _states, max_size=12),
)


@given(snap=_snapshots, restart_degraded=st.booleans())
def test_every_proposal_targets_a_broken_restartable_resource(
    snap: Snapshot, restart_degraded: bool
) -> None:
    """For any snapshot: restarts only of broken restartable resources, one each, sorted."""
    policy = HealPolicy(restart_degraded=restart_degraded)
    evaluation = policy.evaluate(snap, History(), NOW)
    eligible = {Health.UNHEALTHY, Health.DEGRADED} if restart_degraded else {Health.UNHEALTHY}
    broken = {
        str(s.ref): s
        for s in snap.resources.values()
        if s.ref.kind in RESTARTABLE_KINDS
        and s.health in eligible
        and not (s.health is Health.DEGRADED and _rolling(s))
    }
    uris = [str(action.target) for action in evaluation.actions]
    assert uris == sorted(set(uris))
    assert set(uris) == set(broken)
    for action in evaluation.actions:
        assert action.kind == ActionKind.RESTART
        assert action.target.kind in RESTARTABLE_KINDS
    assert policy.evaluate(snap, History(), NOW) == evaluation


def _rolling(state: ResourceState) -> bool:
    return state.rollout is not None and state.rollout.state is RolloutState.IN_PROGRESS


def _at(seconds_ago: float, *states: ResourceState) -> Snapshot:
    at = NOW - timedelta(seconds=seconds_ago)
    return Snapshot(at, {str(s.ref): replace(s, observed_at=at) for s in states})


def _ecs(desired: int, running: int, health: Health, **kw: Any) -> ResourceState:
    return state(
        "ecs://prod/api", health, replicas=Replicas(desired=desired, running=running), **kw
    )


FAILED = RolloutState.FAILED
WOKEN = _ecs(1, 0, Health.UNHEALTHY, detail="0 of 1 tasks running")


def test_a_service_just_scaled_up_is_left_to_start_its_replicas() -> None:
    """Woken from zero (or scaled up) within the start grace, a service whose new
    replicas are not running yet is starting, not broken: no restart (which would
    replace the tasks being started), and a note says why and until when."""
    history = History(snapshots=(_at(60, _ecs(0, 0, Health.HEALTHY)), _at(30, WOKEN)))
    evaluation = HealPolicy().evaluate(snapshot(WOKEN), history, NOW)
    assert evaluation.actions == ()
    (note,) = evaluation.notes
    assert note.resource == "ecs://prod/api"
    assert "raised from 0 to 1" in note.message
    assert "07:59:00" in note.message and "08:02:00" in note.message


@pytest.mark.parametrize(
    ("before", "seconds_ago", "now", "restarted"),
    [
        # The grace has passed since the raise: broken after all.
        (_ecs(0, 0, Health.HEALTHY), 200, WOKEN, True),
        # Nothing was raised: down, as before.
        (_ecs(1, 0, Health.UNHEALTHY), 60, WOKEN, True),
        # Already down before the raise: scaling it does not make it start.
        (_ecs(1, 0, Health.UNHEALTHY), 60, _ecs(2, 0, Health.UNHEALTHY), True),
        # The provider says the new tasks fail.
        (_ecs(0, 0, Health.HEALTHY), 60, _ecs(1, 0, Health.UNHEALTHY, rollout=FAILED), True),
        # Scaled down: nothing new to wait for.
        (_ecs(3, 3, Health.HEALTHY), 60, _ecs(2, 0, Health.UNHEALTHY), True),
        (_ecs(1, 1, Health.HEALTHY), 60, _ecs(3, 1, Health.DEGRADED), False),
    ],
)
def test_only_a_recent_raise_of_a_service_not_failing_waits(
    before: ResourceState, seconds_ago: float, now: ResourceState, restarted: bool
) -> None:
    history = History(snapshots=(_at(seconds_ago, before),))
    policy = HealPolicy(restart_degraded=True)
    assert targets_with(policy, snapshot(now), history) == (["ecs://prod/api"] if restarted else [])


def test_crash_looping_replicas_are_restarted_even_just_after_a_raise() -> None:
    looping = replace(WOKEN, rollout=Rollout(RolloutState.COMPLETED, crash_looping=True))
    history = History(snapshots=(_at(60, _ecs(0, 0, Health.HEALTHY)),))
    assert targets_with(HealPolicy(), snapshot(looping), history) == ["ecs://prod/api"]


def test_a_start_grace_of_zero_restarts_at_once() -> None:
    history = History(snapshots=(_at(30, _ecs(0, 0, Health.HEALTHY)),))
    policy = HealPolicy(start_grace=timedelta(0))
    assert targets_with(policy, snapshot(WOKEN), history) == ["ecs://prod/api"]


def targets_with(policy: HealPolicy, snap: Snapshot, history: History) -> list[str]:
    return [str(action.target) for action in policy.evaluate(snap, history, NOW).actions]
