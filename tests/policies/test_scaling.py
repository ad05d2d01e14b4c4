"""The scaling policy: the seed's scenarios, bounds, schedules and missing metrics."""

from __future__ import annotations

import math
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfoNotFoundError

import pytest

from jarvis.model import Action, History, ResourceState, Snapshot
from jarvis.policies.hpa import MetricTargets
from jarvis.policies.rollback import ROLLBACK_PRIORITY
from jarvis.policies.scaling import SCALING_PRIORITY, ScalingPolicy
from jarvis.policies.scaling_config import behavior_from_config
from jarvis.policies.scaling_rules import ScalingRule
from jarvis.policies.schedule import Schedule, ScheduleWindow
from tests import actions as typed
from tests.policies.fleet import API, T0, TICK, drive, service, snap, steady

PRICE = 0.05
NIGHT = Schedule(
    timezone="America/New_York",
    windows=(ScheduleWindow(start=time(0), end=time(6), min_replicas=1),),
)
RPM_RULE = ScalingRule(
    match="ecs://prod/*",
    targets=MetricTargets(requests_per_minute=100),
    min_replicas=2,
    max_replicas=20,
    price_per_replica_hour=PRICE,
    schedule=NIGHT,
)


def policy(*rules: ScalingRule) -> ScalingPolicy:
    return ScalingPolicy(rules or (RPM_RULE,))


def decide(
    pol: ScalingPolicy,
    now: datetime,
    desired: int,
    metrics: dict[str, float],
    *,
    provider_min: int | None = None,
    provider_max: int | None = None,
) -> tuple[Action | None, list[str]]:
    """One tick after ten steady ticks of the same load: the proposal and the notes."""

    def make(at: datetime) -> ResourceState:
        return service(
            desired=desired,
            at=at,
            metrics=metrics,
            provider_min=provider_min,
            provider_max=provider_max,
        )

    history = History(snapshots=steady(now, 10, make))
    evaluation = pol.evaluate(snap(now, make(now)), history, now)
    assert len(evaluation.actions) <= 1
    action = evaluation.actions[0] if evaluation.actions else None
    return action, [note.message for note in evaluation.notes]


NY_3AM = datetime(2026, 1, 14, 8, 0, tzinfo=UTC)  # 03:00 EST
NY_3PM = datetime(2026, 1, 14, 20, 0, tzinfo=UTC)  # 15:00 EST
BERLIN_3AM = datetime(2026, 1, 14, 2, 0, tzinfo=UTC)  # 21:00 the evening before in New York


@pytest.mark.parametrize(
    ("case", "now", "desired", "metrics", "expected"),
    [
        ("spike 1000 rpm: first step to 6, as fast as +max(100%, 4) allows", T0, 2,
         {"requests_per_minute": 1000}, 6),
        ("night 03:00 New York, 10 rpm: one task", NY_3AM, 2, {"requests_per_minute": 10}, 1),
        ("same load at 15:00: the day minimum holds", NY_3PM, 2, {"requests_per_minute": 10}, None),
        ("03:00 UTC is 21:00 in the rule's zone: no night", BERLIN_3AM, 2,
         {"requests_per_minute": 10}, None),
        ("within 10% tolerance: no change", T0, 2, {"requests_per_minute": 219}, None),
        ("just outside tolerance: ceil(2 x 1.15)", T0, 2, {"requests_per_minute": 230}, 3),
        ("normal load at 10: down to 4 after a steady window", T0, 10,
         {"requests_per_minute": 350}, 4),
        ("zero traffic: the minimum, never zero", T0, 4, {"requests_per_minute": 0}, 2),
        ("above max: capped", T0, 20, {"requests_per_minute": 5000}, None),
    ],
)  # fmt: skip
def test_seed_and_table_scenarios(
    case: str, now: datetime, desired: int, metrics: dict[str, float], expected: int | None
) -> None:
    """Each scenario proposes the replica count in the table, or nothing."""
    action, notes = decide(policy(), now, desired, metrics)
    assert (typed.replicas(action) if action else None) == expected, (case, action, notes)
    assert notes == []


def test_spike_reaches_ten_within_a_minute() -> None:
    """1000 req/min against 100 per task at 2 tasks asks for 10 and gets there in two steps."""
    ticks = drive(policy(), start=T0, ticks=6, metrics=lambda _i, _r: {"requests_per_minute": 1000})
    assert [t.proposed for t in ticks] == [6, None, 10, None, None, None]
    first = ticks[0].evaluation.actions[0]
    assert "→ 10" in first.reason
    assert "rate limit caps 10 at 6" in first.reason
    assert first.cost_delta_per_hour == pytest.approx(4 * PRICE)
    assert first.priority == SCALING_PRIORITY < ROLLBACK_PRIORITY


def test_scale_down_waits_for_the_whole_stabilization_window() -> None:
    """Traffic back to normal returns to 2 tasks when the last high recommendation is 300 s
    old: as in Kubernetes, one made exactly one window ago is outside the window."""
    drop = 4  # ticks 0-3 at 1000 req/min, then 150 req/min (2 tasks' worth)
    ticks = drive(
        policy(),
        start=T0,
        ticks=20,
        metrics=lambda i, _r: {"requests_per_minute": 1000 if i < drop else 150},
    )
    dropped_at = ticks[drop].at
    downs = [t for t in ticks if t.proposed is not None and t.proposed < t.desired]
    assert len(downs) == 1
    last_high = ticks[drop - 1].at
    assert downs[0].at - last_high == timedelta(seconds=300)
    assert downs[0].at - dropped_at == timedelta(seconds=270)
    assert downs[0].proposed == 2
    assert all(t.desired == 10 for t in ticks if dropped_at <= t.at <= downs[0].at)
    saving = downs[0].evaluation.actions[0].cost_delta_per_hour
    assert saving == pytest.approx(-8 * PRICE)


def test_night_schedule_projects_a_saving() -> None:
    """Scaling 2 → 1 at 03:00 carries a negative cost delta of one replica-hour."""
    action, _ = decide(policy(), NY_3AM, 2, {"requests_per_minute": 10})
    assert action is not None
    assert action.cost_delta_per_hour == pytest.approx(-PRICE)
    assert "schedule 00:00-06:00 daily America/New_York" in action.reason


def test_morning_window_raises_the_floor_before_traffic() -> None:
    """A 06:00-09:00 window with min 6 scales up at 06:00 although the load is low."""
    morning = ScheduleWindow(start=time(6), end=time(9), min_replicas=6)
    rule = ScalingRule(
        match="*",
        targets=MetricTargets(requests_per_minute=100),
        min_replicas=1,
        max_replicas=10,
        schedule=Schedule(timezone="UTC", windows=(morning,)),
    )
    six = datetime(2026, 1, 14, 6, 0, tzinfo=UTC)
    before, _ = decide(policy(rule), six - TICK, 1, {"requests_per_minute": 10})
    after, _ = decide(policy(rule), six, 1, {"requests_per_minute": 10})
    assert before is None
    assert after is not None
    assert typed.replicas(after) == 6  # bounds win over the rate limit (max(+100%, +4) = 5)


@pytest.mark.parametrize(
    ("targets", "metrics", "expected"),
    [
        (MetricTargets(cpu_utilization=60), {"cpu_utilization": 90}, 6),
        (MetricTargets(p95_latency_ms=200), {"p95_latency_ms": 300}, 6),
        (
            MetricTargets(cpu_utilization=60, requests_per_minute=100),
            {"cpu_utilization": 50, "requests_per_minute": 700},
            7,
        ),
    ],
)
def test_each_metric_and_the_largest_of_several(
    targets: MetricTargets, metrics: dict[str, float], expected: int
) -> None:
    """CPU and latency scale by their ratio to target; with several, the largest wins."""
    rule = ScalingRule(match="*", targets=targets, min_replicas=1, max_replicas=50)
    action, _ = decide(policy(rule), T0, 4, metrics)
    assert action is not None
    assert typed.replicas(action) == expected


def test_missing_metric_gives_a_note_and_no_decision() -> None:
    """A service without its configured metric is left alone, with a note saying which."""
    action, notes = decide(policy(), T0, 4, {"cpu_utilization": 5})
    assert action is None
    assert notes == [f"{API}: no scaling decision: missing metrics requests_per_minute"]


@pytest.mark.parametrize("value", [math.nan, math.inf, -1.0])
def test_nonsense_metric_counts_as_missing(value: float) -> None:
    """NaN, infinite or negative readings are no basis for scaling to the minimum."""
    action, notes = decide(policy(), T0, 4, {"requests_per_minute": value})
    assert action is None
    assert "missing metrics requests_per_minute" in notes[0]


def test_stale_metrics_give_a_note_and_no_decision() -> None:
    """Metrics observed three minutes ago are stale: no scale-down to the minimum."""
    pol = policy()
    old = T0 - timedelta(minutes=3)
    state = service(desired=8, at=old, metrics={"requests_per_minute": 0})
    evaluation = pol.evaluate(snap(T0, state), History(), T0)
    assert evaluation.actions == ()
    assert [n.key for n in evaluation.notes] == [f"scaling:metrics:{API}"]
    assert "stale: observed 180 s ago (limit 120 s)" in evaluation.notes[0].message


@pytest.mark.parametrize(
    ("case", "desired", "metrics", "expected"),
    [
        ("above the max, metric missing", 25, {"cpu_utilization": 5}, 20),
        ("below the min, metric NaN", 1, {"requests_per_minute": math.nan}, 2),
    ],
)
def test_a_count_outside_the_bounds_is_corrected_without_metrics(
    case: str, desired: int, metrics: dict[str, float], expected: int
) -> None:
    """As Kubernetes' HPA, a count outside min/max goes to the bound whatever the metrics say."""
    state = service(desired=desired, at=T0, metrics=metrics)
    evaluation = policy().evaluate(snap(T0, state), History(), T0)
    assert [typed.replicas(a) for a in evaluation.actions] == [expected], case
    reason = evaluation.actions[0].reason
    assert reason.startswith(f"scale {desired} → {expected}: no metric decision ("), reason
    assert f"bounds 2-20 move {desired} to {expected}" in reason


def test_a_stale_count_outside_the_bounds_is_not_acted_on() -> None:
    """Observed three minutes ago, the count itself may be out of date: a note, no move."""
    state = service(desired=30, at=T0 - timedelta(minutes=3), metrics={"requests_per_minute": 0})
    evaluation = policy().evaluate(snap(T0, state), History(), T0)
    assert evaluation.actions == ()
    assert "stale: observed 180 s ago" in evaluation.notes[0].message


def test_service_scaled_to_zero_elsewhere_is_left_at_zero() -> None:
    """Desired 0 set outside Jarvis pauses scaling rather than scaling from zero."""
    action, notes = decide(policy(), T0, 0, {"requests_per_minute": 500})
    assert action is None
    assert "scaled to 0 outside Jarvis" in notes[0]


@pytest.mark.parametrize(
    ("desired", "rpm", "provider", "expected"),
    [
        (2, 1000, (None, 5), 5),  # provider's max caps the rule's 20
        (10, 50, (4, None), 4),  # provider's min stops the scale-down above the rule's 2
        (10, 1000, (1, 8), 8),  # already above the provider's max: down to it
    ],
)
def test_provider_bounds_are_respected(
    desired: int, rpm: float, provider: tuple[int | None, int | None], expected: int
) -> None:
    """An autoscaler's own min/max narrow the rule's bounds."""
    action, _ = decide(
        policy(),
        T0,
        desired,
        {"requests_per_minute": rpm},
        provider_min=provider[0],
        provider_max=provider[1],
    )
    assert action is not None
    assert typed.replicas(action) == expected


def test_conflicting_bounds_give_a_note() -> None:
    """A rule minimum above the provider's maximum leaves no valid count: note, no action."""
    action, notes = decide(policy(), T0, 3, {"requests_per_minute": 300}, provider_max=1)
    assert action is None
    assert "no replica count fits" in notes[0]


def test_no_scale_down_before_history_covers_the_window() -> None:
    """Right after a restart (no history), low traffic does not scale down but a spike scales up."""
    pol = policy()
    low = pol.evaluate(
        snap(T0, service(desired=8, metrics={"requests_per_minute": 10})), History(), T0
    )
    high = pol.evaluate(
        snap(T0, service(desired=2, metrics={"requests_per_minute": 400})), History(), T0
    )
    assert low.actions == ()
    assert [typed.replicas(a) for a in high.actions] == [4]


def test_first_matching_rule_wins_and_unmatched_resources_are_ignored() -> None:
    """Rules are tried in order; resources no rule matches, or without replicas, get nothing."""
    specific = ScalingRule(
        match="ecs://prod/api", targets=MetricTargets(requests_per_minute=50), max_replicas=50
    )
    general = ScalingRule(match="ecs://*", targets=MetricTargets(requests_per_minute=100))
    pol = policy(specific, general)
    load = {"requests_per_minute": 400}
    states = [
        service(API, desired=4, metrics=load),
        service("ecs://prod/worker", desired=2, metrics=load),
        service("k8s://default/web", desired=2, metrics=load),
        service("route://chat", desired=None, metrics=load),
    ]
    evaluation = pol.evaluate(snap(T0, *states), History(), T0)
    proposed = {str(a.target): typed.replicas(a) for a in evaluation.actions}
    assert proposed == {API: 8, "ecs://prod/worker": 4}
    assert evaluation.notes == ()


def test_scale_down_rate_limit_is_configurable() -> None:
    """With at most 50% down per minute, 10 → 2 takes two steps a minute apart."""
    pol = ScalingPolicy([RPM_RULE], behavior=behavior_from_config({"scale_down_max_percent": 50}))
    ticks = drive(
        pol,
        start=T0,
        ticks=20,
        replicas=10,
        metrics=lambda _i, _r: {"requests_per_minute": 150},
    )
    steps = [t for t in ticks if t.proposed is not None]
    # int(5 x 0.5) = 2: the percentage rounds towards more change, as the HPA's does.
    assert [t.proposed for t in steps] == [5, 2]
    assert steps[1].at - steps[0].at == timedelta(seconds=60)


def test_unknown_time_zone_is_refused_at_construction() -> None:
    """A misspelt zone fails when the policy is built, not at 03:00."""
    with pytest.raises(ZoneInfoNotFoundError, match="Nowhere/Special"):
        Schedule(timezone="Nowhere/Special")


def test_rules_reject_inverted_bounds() -> None:
    """min_replicas above max_replicas is refused."""
    with pytest.raises(ValueError, match="min_replicas <= max_replicas"):
        ScalingRule(match="*", targets=MetricTargets(cpu_utilization=50), min_replicas=5,
                    max_replicas=2)  # fmt: skip


def test_evaluation_of_an_empty_snapshot_is_empty() -> None:
    """No resources, no proposals, no notes."""
    evaluation = policy().evaluate(Snapshot(T0, {}), History(), T0)
    assert evaluation.actions == ()
    assert evaluation.notes == ()


def test_scale_down_goes_only_to_the_highest_recommendation_in_the_window() -> None:
    """Load that fell in two steps scales down to what the window's busiest tick needed."""
    pol = policy()
    history = History(
        snapshots=tuple(
            snap(t, service(desired=10, at=t, metrics={"requests_per_minute": rpm}))
            for t, rpm in [(T0 - TICK * i, 350 if i > 5 else 150) for i in range(11, 0, -1)]
        )
    )
    now_state = service(desired=10, metrics={"requests_per_minute": 150})
    evaluation = pol.evaluate(snap(T0, now_state), history, T0)
    assert [typed.replicas(a) for a in evaluation.actions] == [4]
    assert "held at 4, the highest recommendation of the last 300 s" in evaluation.actions[0].reason
