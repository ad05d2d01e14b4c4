"""Scale to zero and back, as KEDA does, for rules with ``min_replicas = 0``."""

from __future__ import annotations

from datetime import time, timedelta

import pytest

from jarvis.model import History
from jarvis.policies.hpa import MetricTargets
from jarvis.policies.scaling import ScalingPolicy
from jarvis.policies.scaling_rules import ScalingRule
from jarvis.policies.schedule import Schedule, ScheduleWindow
from tests import actions as typed
from tests.policies.fleet import T0, TICK, drive, service, snap

ZERO = ScalingRule(
    match="ecs://prod/*",
    targets=MetricTargets(requests_per_minute=100),
    min_replicas=0,
    max_replicas=10,
    cooldown_seconds=300,
)


def policy(rule: ScalingRule = ZERO) -> ScalingPolicy:
    return ScalingPolicy([rule])


def test_idle_for_the_whole_cooldown_scales_to_zero_with_a_cold_start_note() -> None:
    """300 s after the last request seen, it goes to zero at once (KEDA's cooldown, not the
    HPA's window, which would hold it at three)."""
    ticks = drive(
        policy(),
        start=T0,
        ticks=20,
        replicas=3,
        metrics=lambda i, _r: {"requests_per_minute": 250 if i < 2 else 0},
    )
    zero = next(t for t in ticks if t.proposed == 0)
    last_busy = ticks[1].at
    assert zero.at - last_busy == timedelta(seconds=300)
    assert all(t.desired == 3 for t in ticks if t.at <= zero.at)
    reason = zero.evaluation.actions[0].reason
    assert reason.startswith("scale 3 → 0: requests_per_minute 0/min at or below"), reason
    assert "cooldown" in reason and "cold start" in reason


def test_requests_wake_a_service_at_zero_with_a_cold_start_note() -> None:
    """At zero, the first requests scale it to one replica; then the HPA takes over, its
    rate policies counting the wake-up as a scale event (+4 per 60 s from 0, then from 1)."""
    ticks = drive(
        policy(),
        start=T0,
        ticks=4,
        replicas=0,
        metrics=lambda i, _r: {"requests_per_minute": 0 if i < 1 else 900},
    )
    assert [t.proposed for t in ticks] == [None, 1, 4, 5]
    reason = ticks[1].evaluation.actions[0].reason
    assert reason.startswith("scale 0 → 1: requests_per_minute 900/min above"), reason
    assert "cold start" in reason


def test_below_the_activation_threshold_a_service_stays_at_zero() -> None:
    """Traffic at or below activation_requests_per_minute does not wake it."""
    rule = ScalingRule(
        match="ecs://prod/*",
        targets=MetricTargets(requests_per_minute=100),
        min_replicas=0,
        activation_requests_per_minute=5,
    )
    ticks = drive(policy(rule), start=T0, ticks=3, replicas=0,
                  metrics=lambda _i, _r: {"requests_per_minute": 5})  # fmt: skip
    assert [t.proposed for t in ticks] == [None, None, None]


def test_a_fresh_process_does_not_scale_to_zero_on_history_it_has_not_seen() -> None:
    """Idle now but no snapshot as old as the cooldown: no scale to zero yet."""
    now = T0 + 10 * TICK
    state = service(desired=1, at=now, metrics={"requests_per_minute": 0})
    history = History(
        snapshots=tuple(
            snap(now - k * TICK, service(desired=1, at=now - k * TICK,
                                         metrics={"requests_per_minute": 0}))
            for k in range(9, 0, -1)
        )
    )  # fmt: skip
    evaluation = policy().evaluate(snap(now, state), history, now)
    assert evaluation.actions == ()


def test_unknown_requests_are_not_idleness() -> None:
    """A missing request metric gives a note, never a scale to zero."""
    ticks = drive(policy(), start=T0, ticks=15, replicas=1, metrics=lambda _i, _r: {})
    assert all(t.proposed is None for t in ticks)
    assert "missing metrics requests_per_minute" in ticks[-1].evaluation.notes[0].message


def test_a_rule_without_zero_leaves_a_service_at_zero_alone() -> None:
    """Scaled to zero outside Jarvis, a service whose rule has min_replicas >= 1 is paused."""
    rule = ScalingRule(match="ecs://prod/*", targets=MetricTargets(requests_per_minute=100))
    ticks = drive(policy(rule), start=T0, ticks=2, replicas=0,
                  metrics=lambda _i, _r: {"requests_per_minute": 900})  # fmt: skip
    assert [t.proposed for t in ticks] == [None, None]
    assert "not scaling it" in ticks[0].evaluation.notes[0].message


def test_scale_to_zero_needs_requests_as_its_activity() -> None:
    """min_replicas = 0 on a CPU-only rule is refused: nothing would wake it."""
    with pytest.raises(ValueError, match="target_requests_per_minute"):
        ScalingRule(match="*", targets=MetricTargets(cpu_utilization=50), min_replicas=0)


def test_the_guard_lets_a_scale_to_zero_through() -> None:
    """Zero is within the guard's replica bounds; the policy's action says 0 replicas."""
    ticks = drive(policy(), start=T0, ticks=14, replicas=1,
                  metrics=lambda _i, _r: {"requests_per_minute": 0})  # fmt: skip
    zero = [t for t in ticks if t.proposed == 0]
    assert zero and typed.replicas(zero[0].evaluation.actions[0]) == 0


def test_only_requests_can_wake_a_service_at_zero() -> None:
    """At zero a CPU reading does not exist; requests alone wake a CPU-and-requests rule."""
    rule = ScalingRule(
        match="ecs://prod/*",
        targets=MetricTargets(cpu_utilization=60, requests_per_minute=100),
        min_replicas=0,
    )
    ticks = drive(policy(rule), start=T0, ticks=2, replicas=0,
                  metrics=lambda i, _r: {} if i == 0 else {"requests_per_minute": 50})  # fmt: skip
    assert [t.proposed for t in ticks] == [None, 1]
    assert "not waking it" in ticks[0].evaluation.notes[0].message


def test_a_scheduled_floor_wakes_a_service_at_zero_without_a_request_reading() -> None:
    """At zero under a window with min_replicas = 2, the floor holds though requests are unknown."""
    day = Schedule(windows=(ScheduleWindow(start=time(9), end=time(17), min_replicas=2),))
    rule = ScalingRule(
        match="ecs://prod/*",
        targets=MetricTargets(requests_per_minute=100),
        min_replicas=0,
        schedule=day,
    )
    ticks = drive(policy(rule), start=T0, ticks=1, replicas=0, metrics=lambda _i, _r: {})
    assert [t.proposed for t in ticks] == [2]
    reason = ticks[0].evaluation.actions[0].reason
    assert reason.startswith("scale 0 → 2: the bounds' minimum 2"), reason
