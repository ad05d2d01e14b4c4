"""The rollback policy: outright failures, metric regressions, targets and escalation."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

import pytest

from jarvis.loop import events as ev
from jarvis.model import (
    Action,
    ActionKind,
    BlockReason,
    ErrorKind,
    Event,
    EventKind,
    Health,
    History,
    Outcome,
    ResourceRef,
    ResourceState,
    Rollback,
    Rollout,
    RolloutState,
    Snapshot,
    Versions,
)
from jarvis.policies.base import Evaluation
from jarvis.policies.rollback import ROLLBACK_PRIORITY, RollbackPolicy
from jarvis.policies.scaling import SCALING_PRIORITY
from jarvis.policies.slo import with_endpoint_health
from tests import actions as typed
from tests.policies.fleet import API, T0, TICK, changed, rollback_event, service, snap

DEPLOYED = T0 - timedelta(minutes=5)
GOOD_EVENTS = (
    changed(T0 - timedelta(hours=3), "v1", rollout="in_progress", previous="v0"),
    changed(T0 - timedelta(hours=3) + TICK, "v1", rollout="completed"),
)
V2_ARRIVES = changed(DEPLOYED, "v2", rollout="in_progress", previous="v1")


def running(
    version: str = "v2",
    *,
    health: Health = Health.HEALTHY,
    at: datetime = T0,
    metrics: dict[str, float] | None = None,
    **attributes: Any,
) -> ResourceState:
    attributes.setdefault("previous_version", "v1")
    return service(version=version, health=health, at=at, metrics=metrics, attributes=attributes)


def evaluate(
    state: ResourceState,
    events: tuple[Event, ...] = (*GOOD_EVENTS, V2_ARRIVES),
    snapshots: tuple[Snapshot, ...] = (),
    now: datetime = T0,
    policy: RollbackPolicy | None = None,
) -> Evaluation:
    pol = policy or RollbackPolicy()
    return pol.evaluate(snap(now, state), History(snapshots=snapshots, events=events), now)


def target(evaluation: Evaluation) -> str | None:
    assert len(evaluation.actions) <= 1
    return typed.version(evaluation.actions[0]) if evaluation.actions else None


@pytest.mark.parametrize(
    ("case", "state", "now", "expected"),
    [
        ("ECS rolloutState FAILED / circuit breaker", running(rollout="failed",
         rollout_reason="ECS deployment circuit breaker: tasks failed to start"), T0, "v1"),
        ("Kubernetes ProgressDeadlineExceeded", running(rollout="failed",
         rollout_reason="ProgressDeadlineExceeded"), T0, "v1"),
        ("new pods crash-looping", running(rollout="in_progress", crash_looping=True), T0,
             "v1"),
        ("new version unhealthy in the window", running(health=Health.UNHEALTHY), T0, "v1"),
        ("unhealthy after the window is heal's business", running(health=Health.UNHEALTHY),
         DEPLOYED + timedelta(minutes=16), None),
        ("Cloud Run revision never ready", running(rollout="in_progress"),
         DEPLOYED + timedelta(minutes=11), "v1"),
        ("still rolling out within the ready timeout", running(rollout="in_progress"), T0, None),
        ("healthy new version", running(rollout="completed"), T0, None),
    ],
)  # fmt: skip
def test_outright_failures_roll_back_to_the_last_known_good(
    case: str, state: ResourceState, now: datetime, expected: str | None
) -> None:
    """Each failure mode of a fresh rollout proposes the last known good version."""
    evaluation = evaluate(state, now=now)
    assert target(evaluation) == expected, case
    for action in evaluation.actions:
        assert action.kind == ActionKind.ROLLBACK
        assert action.priority == ROLLBACK_PRIORITY > SCALING_PRIORITY
        assert "roll back v2 → v1 (last known good)" in action.reason


def test_failure_reason_reaches_the_proposal() -> None:
    """The provider's own words for the failure are in the reason the operator reads."""
    evaluation = evaluate(running(rollout="failed", rollout_reason="ProgressDeadlineExceeded"))
    assert "rollout of v2 failed (ProgressDeadlineExceeded)" in evaluation.actions[0].reason


def history_of(
    *, before: list[dict[str, float]], after: list[dict[str, float]]
) -> tuple[Snapshot, ...]:
    """Snapshots of v1 with ``before`` metrics, then of v2 with ``after``, 30 s apart."""
    rows = [("v1", m) for m in before] + [("v2", m) for m in after]
    start = T0 - TICK * len(rows)
    return tuple(
        snap(start + TICK * i, running(v, at=start + TICK * i, metrics=m))
        for i, (v, m) in enumerate(rows)
    )


@pytest.mark.parametrize(
    ("after", "now_metrics", "expected"),
    [
        ([{"error_rate": 0.09}] * 2, {"error_rate": 0.08}, "v1"),  # 3 checks worse
        ([{"error_rate": 0.01}, {"error_rate": 0.09}], {"error_rate": 0.08}, None),  # only 2
        ([{"error_rate": 0.02}] * 2, {"error_rate": 0.02}, None),  # within the 2-point margin
        ([{"p95_latency_ms": 200}] * 2, {"p95_latency_ms": 180}, "v1"),  # > 1.25 x 120
        ([{"p95_latency_ms": 140}] * 2, {"p95_latency_ms": 145}, None),  # within 25 %
        ([{}] * 2, {"error_rate": 0.5}, None),  # a gap breaks the run
    ],
)
def test_metric_regressions_need_n_consecutive_checks(
    after: list[dict[str, float]], now_metrics: dict[str, float], expected: str | None
) -> None:
    """Error rate or p95 worse than v1's baseline by the margin for 3 checks rolls back."""
    baseline = [{"error_rate": 0.01, "p95_latency_ms": 120}] * 4
    snapshots = history_of(before=baseline, after=after)
    evaluation = evaluate(running(metrics=now_metrics), snapshots=snapshots)
    assert target(evaluation) == expected


def test_regression_reason_shows_values_and_baseline() -> None:
    """The proposal says which metric, its recent values, the baseline and the limit."""
    snapshots = history_of(before=[{"error_rate": 0.01}] * 3, after=[{"error_rate": 0.09}] * 2)
    evaluation = evaluate(running(metrics={"error_rate": 0.1}), snapshots=snapshots)
    reason = evaluation.actions[0].reason
    assert "error_rate 0.09, 0.09, 0.1 over 3 checks, worse than v1's 0.01 (limit 0.03)" in reason


@pytest.mark.parametrize("reading", [math.nan, math.inf, -1.0])
def test_an_unusable_baseline_reading_does_not_hide_a_regression(reading: float) -> None:
    """One NaN, infinite or negative reading of v1 is left out of its baseline, not averaged in."""
    baseline = [{"error_rate": 0.01}] * 3 + [{"error_rate": reading}]
    snapshots = history_of(before=baseline, after=[{"error_rate": 0.5}] * 2)
    evaluation = evaluate(running(metrics={"error_rate": 0.5}), snapshots=snapshots)
    assert target(evaluation) == "v1"
    assert "worse than v1's 0.01 (limit 0.03)" in evaluation.actions[0].reason


def test_a_p95_of_zero_is_no_latency_baseline() -> None:
    """A p95 of 0 ms measured no request: a new version is not judged 25 % worse than nothing."""
    snapshots = history_of(before=[{"p95_latency_ms": 0.0}] * 4, after=[{"p95_latency_ms": 40}] * 2)
    assert evaluate(running(metrics={"p95_latency_ms": 40}), snapshots=snapshots).actions == ()
    before: list[dict[str, float]] = [{"p95_latency_ms": v} for v in (0.0, 100.0, 100.0)]
    snapshots = history_of(before=before, after=[{"p95_latency_ms": 110}] * 2)
    assert evaluate(running(metrics={"p95_latency_ms": 110}), snapshots=snapshots).actions == ()


def test_no_baseline_means_no_metric_verdict() -> None:
    """Without enough snapshots of the previous version, bad-looking metrics decide nothing."""
    snapshots = history_of(before=[{"error_rate": 0.0}], after=[{"error_rate": 0.5}] * 2)
    evaluation = evaluate(running(metrics={"error_rate": 0.5}), snapshots=snapshots)
    assert evaluation.actions == ()


@pytest.mark.parametrize(
    ("now", "expected"), [(T0, "v1"), (DEPLOYED + timedelta(minutes=20), None)]
)
def test_metrics_after_the_watch_window_are_not_judged(now: datetime, expected: str | None) -> None:
    """The same regression rolls back 5 minutes after the change, not 20 minutes after."""
    snapshots = history_of(before=[{"error_rate": 0.0}] * 3, after=[{"error_rate": 0.9}] * 2)
    evaluation = evaluate(running(metrics={"error_rate": 0.9}), snapshots=snapshots, now=now)
    assert target(evaluation) == expected


def test_never_redeploys_a_version_rolled_back_as_bad() -> None:
    """v2 was rolled back once; when v3 fails the target is v1, not the newer v2."""
    events = (
        *GOOD_EVENTS,
        changed(T0 - timedelta(hours=2), "v2", rollout="completed", previous="v1"),
        rollback_event(EventKind.ACTION_APPLIED, T0 - timedelta(hours=1), "v1"),
        changed(T0 - timedelta(hours=1) + TICK, "v1", rollout="in_progress", previous="v2"),
        changed(DEPLOYED, "v3", rollout="in_progress", previous="v1"),
    )
    evaluation = evaluate(running("v3", rollout="failed", previous_version="v2"), events=events)
    assert target(evaluation) == "v1"


ROLLED_BACK_TO_V1 = (
    changed(T0 - timedelta(hours=5), "v0", rollout="completed"),
    *GOOD_EVENTS,
    V2_ARRIVES,
    rollback_event(EventKind.ACTION_APPLIED, T0 - timedelta(minutes=2), "v1"),
    changed(T0 - timedelta(minutes=2) + TICK, "v1", rollout="in_progress", previous="v2"),
)


@pytest.mark.parametrize(
    "attributes",
    [
        {"health": Health.UNHEALTHY, "rollout": "in_progress"},
        {"rollout": "in_progress", "crash_looping": True},
        {"rollout": "failed", "rollout_reason": "ProgressDeadlineExceeded"},
    ],
)
def test_a_version_rolled_back_to_is_not_rolled_back_further(attributes: dict[str, Any]) -> None:
    """v2 was rolled back to v1; v1 failing as it returns alerts a human, not a cascade to v0."""
    state = running("v1", previous_version="v2", **attributes)
    evaluation = evaluate(state, events=ROLLED_BACK_TO_V1)
    assert evaluation.actions == ()
    assert [(n.alert, n.key) for n in evaluation.notes] == [(True, f"rollback:restored:{API}")]
    assert "v1 is the version rolled back to; not rolling back further" in (
        evaluation.notes[0].message
    )


@pytest.mark.parametrize(
    "attributes",
    [
        {"health": Health.UNHEALTHY, "rollout": "in_progress"},
        {"rollout": "failed", "rollout_reason": "ProgressDeadlineExceeded"},
    ],
)
def test_a_rollback_confirmed_after_its_version_arrived_counts_as_rolled_back_to(
    attributes: dict[str, Any],
) -> None:
    """A rollback to v1 recorded unknown, v1 seen arriving, then the rollback confirmed applied
    (`jarvis.loop.unknowns`): v1 is the version rolled back to, v2 the bad one, and the
    unknown outcome is no failed rollback any more."""
    action = Action(ResourceRef.parse(API), Rollback("v1"), policy="rollback", reason="failed")
    tick = "20260302T085800.000Z-test"
    action_id = ev.action_id_for(tick, action)
    sent = T0 - timedelta(minutes=2)
    intent = ev.started(tick, sent, action, action_id)
    unknown = ev.outcome_event(tick, sent, action, action_id, Outcome.timed_out("no answer"))
    events = (
        changed(T0 - timedelta(hours=5), "v0", rollout="completed"),
        *GOOD_EVENTS,
        V2_ARRIVES,
        unknown,
        changed(sent + TICK, "v1", rollout="in_progress", previous="v2"),
        ev.confirmed_applied(intent, sent + 2 * TICK, "key found", quarantined=False),
    )
    state = running("v1", previous_version="v2", **attributes)
    evaluation = evaluate(state, events=events)
    assert evaluation.actions == ()
    assert [(n.alert, n.key) for n in evaluation.notes] == [(True, f"rollback:restored:{API}")]


def test_a_version_deployed_again_by_hand_is_judged_again() -> None:
    """Only Jarvis's own rollback makes an arrival exempt: v1 redeployed by a person is watched."""
    events = (
        changed(T0 - timedelta(hours=5), "v0", rollout="completed"),
        *GOOD_EVENTS,
        V2_ARRIVES,
        changed(T0 - timedelta(minutes=2), "v1", rollout="in_progress", previous="v2"),
    )
    state = running("v1", previous_version="v2", rollout="failed")
    assert target(evaluate(state, events=events)) == "v0"


def test_falls_back_to_previous_version_when_history_knows_no_good_one() -> None:
    """With no healthy completed version in the events, the provider's previous version is used."""
    evaluation = evaluate(running(rollout="failed"), events=(V2_ARRIVES,))
    assert target(evaluation) == "v1"
    assert "previous version, not seen healthy in history" in evaluation.actions[0].reason


def test_target_must_be_available() -> None:
    """A known good version the provider no longer offers is skipped."""
    events = (
        changed(T0 - timedelta(hours=5), "v0", rollout="completed"),
        *GOOD_EVENTS,
        V2_ARRIVES,
    )
    state = running(rollout="failed", versions_available=["v2", "v0"])
    assert target(evaluate(state, events=events)) == "v0"


def test_no_target_alerts_instead_of_guessing() -> None:
    """When the only candidate is the running version, nothing is proposed and an alert says so."""
    events = (changed(DEPLOYED, "v2", rollout="completed", previous="v1"),)
    state = running(rollout="failed", previous_version="v2")
    evaluation = evaluate(state, events=events)
    assert evaluation.actions == ()
    assert [(n.alert, n.key) for n in evaluation.notes] == [(True, f"rollback:no-target:{API}")]


def test_failed_rollback_alerts_once_and_is_proposed_again() -> None:
    """A failed rollback raises one alert in the next tick; the retry budget governs retries."""
    # Stamped with the previous tick's own time, as under a virtual clock.
    failure = rollback_event(EventKind.ACTION_FAILED, T0 - TICK, "v1", detail="throttled")
    events = (*GOOD_EVENTS, V2_ARRIVES, failure)
    state = running(rollout="failed")
    previous_tick = (snap(T0 - TICK, running(rollout="failed", at=T0 - TICK)),)
    first = evaluate(state, events=events, snapshots=previous_tick)
    later_tick = (*previous_tick, snap(T0, state))
    second = evaluate(state, events=events, snapshots=later_tick, now=T0 + TICK)
    assert target(first) == target(second) == "v1"
    assert [(n.alert, n.message) for n in first.notes] == [
        (True, f"{API}: rollback failed: throttled")
    ]
    assert second.notes == ()


def test_a_rollback_whose_call_timed_out_alerts_its_outcome_unknown() -> None:
    """A rollback with no answer in time (recorded unknown: it may have landed) is told to a
    human as such, as its failure was before; the retry budget governs retries."""
    action = Action(ResourceRef.parse(API), Rollback("v1"), policy="rollback", reason="failed")
    outcome = Outcome.timed_out("apply did not finish within 20s")
    tick = "20260302T085930.000Z-test"
    unknown = ev.outcome_event(tick, T0 - TICK, action, ev.action_id_for(tick, action), outcome)
    assert unknown.kind is EventKind.ACTION_UNKNOWN
    state = running(rollout="failed")
    previous_tick = (snap(T0 - TICK, running(rollout="failed", at=T0 - TICK)),)
    evaluation = evaluate(
        state, events=(*GOOD_EVENTS, V2_ARRIVES, unknown), snapshots=previous_tick
    )
    assert target(evaluation) == "v1"
    assert [n.message for n in evaluation.notes if n.alert] == [
        f"{API}: rollback outcome unknown: apply did not finish within 20s"
    ]


def test_a_rollback_recovery_closed_as_unknown_alerts_with_its_reason() -> None:
    """An orphaned rollback closed as unknown at start has no detail: the alert gives the
    reason recovery wrote."""
    action = Action(ResourceRef.parse(API), Rollback("v1"), policy="rollback", reason="failed")
    tick = "20260302T085930.000Z-test"
    intent = ev.started(tick, T0 - TICK, action, ev.action_id_for(tick, action))
    unknown = ev.unknown_outcome(intent, T0 - TICK)
    state = running(rollout="failed")
    previous_tick = (snap(T0 - TICK, running(rollout="failed", at=T0 - TICK)),)
    evaluation = evaluate(
        state, events=(*GOOD_EVENTS, V2_ARRIVES, unknown), snapshots=previous_tick
    )
    assert [n.message for n in evaluation.notes if n.alert] == [
        f"{API}: rollback outcome unknown: the process ended between intent and outcome; "
        "counted as a failed attempt"
    ]


def test_a_rollback_the_kill_switch_withheld_is_no_failed_rollback() -> None:
    """A rollback closed unsent (the switch engaged after its intent) raises no failure alert."""
    action = Action(ResourceRef.parse(API), Rollback("v1"), policy="rollback", reason="failed")
    outcome = Outcome.withheld(BlockReason.KILLSWITCH, "engaged while the intent was written")
    tick = "20260302T085930.000Z-test"
    withheld = ev.outcome_event(tick, T0 - TICK, action, ev.action_id_for(tick, action), outcome)
    state = running(rollout="failed")
    previous_tick = (snap(T0 - TICK, running(rollout="failed", at=T0 - TICK)),)
    evaluation = evaluate(
        state, events=(*GOOD_EVENTS, V2_ARRIVES, withheld), snapshots=previous_tick
    )
    assert target(evaluation) == "v1"
    assert [n.message for n in evaluation.notes if n.alert] == []


def test_a_rollback_whose_target_was_gone_is_no_failed_rollback() -> None:
    """A rollback the provider answered has no target (deleted since observe) pages no one."""
    action = Action(ResourceRef.parse(API), Rollback("v1"), policy="rollback", reason="failed")
    outcome = Outcome.failure("the service is being deleted", kind=ErrorKind.GONE, code="Deleting")
    tick = "20260302T085930.000Z-test"
    gone = ev.outcome_event(tick, T0 - TICK, action, ev.action_id_for(tick, action), outcome)
    state = running(rollout="failed")
    previous_tick = (snap(T0 - TICK, running(rollout="failed", at=T0 - TICK)),)
    evaluation = evaluate(state, events=(*GOOD_EVENTS, V2_ARRIVES, gone), snapshots=previous_tick)
    assert [n.message for n in evaluation.notes if n.alert] == []


def test_escalated_rollback_stops_proposals() -> None:
    """After the retry budget escalated a rollback, the policy waits for an operator."""
    escalation = rollback_event(EventKind.ACTION_ESCALATED, T0 - TICK / 2, "v1")
    evaluation = evaluate(running(rollout="failed"), events=(*GOOD_EVENTS, V2_ARRIVES, escalation))
    assert evaluation.actions == ()
    assert [n.alert for n in evaluation.notes] == [True, False]
    assert "rollback escalated, not retrying" in evaluation.notes[1].message


def test_rollback_failures_of_an_earlier_rollout_are_forgotten() -> None:
    """An escalation before the running version arrived does not block this rollout's rollback."""
    old = rollback_event(EventKind.ACTION_ESCALATED, DEPLOYED - timedelta(hours=1), "v0")
    evaluation = evaluate(running(rollout="failed"), events=(old, *GOOD_EVENTS, V2_ARRIVES))
    assert target(evaluation) == "v1"


def test_only_matching_resources_with_versions_are_watched() -> None:
    """Globs choose the resources; a resource without a version is never judged."""
    policy = RollbackPolicy(match=["k8s://*"])
    assert evaluate(running(rollout="failed"), policy=policy).actions == ()
    unversioned = service(desired=2, attributes={"rollout": "failed"})
    assert RollbackPolicy().evaluate(snap(T0, unversioned), History(), T0).actions == ()


@pytest.mark.parametrize(
    ("glob", "watched"),
    [
        ("ecs://prod/*", True),
        ("ecs://pr*", True),  # '*' crosses '/': README "Resource globs"
        ("ecs://pro?/api", True),
        ("prod/*", False),  # the whole URI, not the path after ecs://
        ("ECS://prod/*", False),  # case-sensitive
        ("ecs://prod", False),  # the whole URI must match
    ],
)
def test_match_globs_follow_the_resource_glob_rule_over_the_whole_uri(
    glob: str, watched: bool
) -> None:
    """Rollback's ``match`` is a glob over the whole URI by README's one rule, and its
    per-URI memo of matches answers the same on the next evaluation as on the first."""
    policy = RollbackPolicy(match=[glob])
    for _ in range(2):
        assert (target(evaluate(running(rollout="failed"), policy=policy)) == "v1") is watched


def test_a_typed_failed_rollout_rolls_back_to_the_previous_version() -> None:
    """The policy reads the `Rollout` and `Versions` facets, with no attributes at all."""
    state = ResourceState(
        ResourceRef.parse(API),
        Health.HEALTHY,
        T0,
        version="v2",
        rollout=Rollout(RolloutState.FAILED, reason="circuit breaker"),
        versions=Versions(previous="v1", available=("v1",)),
    )
    evaluation = RollbackPolicy().evaluate(snap(T0, state), History(), T0)
    assert [(a.params, "circuit breaker" in a.reason) for a in evaluation.actions] == [
        (Rollback("v1"), True)
    ]


def test_a_failing_endpoint_of_a_new_version_rolls_it_back() -> None:
    """A healthy-looking v2 whose endpoint fails in the watch window is rolled back, once folded."""
    endpoint = ResourceState(
        ResourceRef("endpoint", "api", "endpoint"), Health.UNHEALTHY, T0, detail="status 502"
    )
    history = History(events=(*GOOD_EVENTS, V2_ARRIVES))
    raw = snap(T0, running(), endpoint)
    folded = with_endpoint_health(raw, {"endpoint://api": API})
    result = RollbackPolicy().evaluate(folded, history, T0)
    assert target(result) == "v1"
    assert "endpoint://api failing: status 502" in result.actions[0].reason
    assert target(RollbackPolicy().evaluate(raw, history, T0)) is None
