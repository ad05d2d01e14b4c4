"""The HPA arithmetic and schedule windows, checked against hand-worked numbers."""

from __future__ import annotations

from datetime import UTC, datetime, time

import pytest

from jarvis.policies.hpa import MetricTargets, missing, recommend
from jarvis.policies.hpa_behavior import (
    PolicyType,
    RatePolicy,
    ScalingRules,
    rate_limit,
    scale_down_limit,
    scale_up_limit,
    stabilize,
)
from jarvis.policies.scaling_config import behavior_from_config
from jarvis.policies.schedule import Schedule, ScheduleWindow, parse_days, parse_time


@pytest.mark.parametrize(
    ("current", "metrics", "targets", "expected"),
    [
        (2, {"requests_per_minute": 1000}, MetricTargets(requests_per_minute=100), 10),
        (3, {"cpu_utilization": 77}, MetricTargets(cpu_utilization=70), 3),  # x1.10: tolerance
        (3, {"cpu_utilization": 78}, MetricTargets(cpu_utilization=70), 4),
        (10, {"cpu_utilization": 10}, MetricTargets(cpu_utilization=70), 2),
        (2, {"cpu_utilization": 110}, MetricTargets(cpu_utilization=100), 2),  # float noise
        (4, {"p95_latency_ms": 100}, MetricTargets(p95_latency_ms=400), 1),
        (5, {"requests_per_minute": 0}, MetricTargets(requests_per_minute=100), 0),
    ],
)
def test_recommendation_is_ceil_of_current_times_ratio(
    current: int, metrics: dict[str, float], targets: MetricTargets, expected: int
) -> None:
    """desired = ceil(current x metric / target), unchanged within 10% of the target."""
    assert recommend(current, metrics, targets, 0.1).replicas == expected


def test_recommendation_names_the_metric_that_asked_for_most() -> None:
    """With several metrics the largest proposal wins and its metric is named."""
    targets = MetricTargets(cpu_utilization=50, requests_per_minute=100, p95_latency_ms=200)
    rec = recommend(4, {"cpu_utilization": 60, "requests_per_minute": 100, "p95_latency_ms": 500},
                    targets, 0.1)  # fmt: skip
    assert (rec.replicas, rec.metric) == (10, "p95_latency_ms")


def test_missing_lists_absent_and_unusable_metrics() -> None:
    """Absent, NaN and negative readings of configured metrics are missing; others ignored."""
    targets = MetricTargets(cpu_utilization=50, requests_per_minute=100, p95_latency_ms=200)
    got = missing({"cpu_utilization": float("nan"), "p95_latency_ms": -3, "x": 1}, targets)
    assert got == ["cpu_utilization", "requests_per_minute", "p95_latency_ms"]


def test_targets_need_one_positive_metric() -> None:
    """A rule with no metric, or a zero target, is refused."""
    with pytest.raises(ValueError, match="at least one metric"):
        MetricTargets()
    with pytest.raises(ValueError, match="must be positive"):
        MetricTargets(cpu_utilization=0)


NOW = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("base", "up", "down"),
    [(1, 5, 0), (2, 6, 0), (4, 8, 0), (10, 20, 0)],
)
def test_default_rate_limits(base: int, up: int, down: int) -> None:
    """Up by max(+100%, +4) per period; down unlimited, as the HPA's defaults."""
    behavior = behavior_from_config({})
    assert scale_up_limit(base, [], behavior.scale_up, NOW) == up
    assert scale_down_limit(base, [], behavior.scale_down, NOW) == down


def test_configured_scale_down_limits_pick_the_larger_change() -> None:
    """With 10% or 3 replicas per period, 20 may drop to 17, and 50 to 45."""
    rules = behavior_from_config({"scale_down_max_percent": 10, "scale_down_max_replicas": 3})
    assert scale_down_limit(20, [], rules.scale_down, NOW) == 17
    assert scale_down_limit(50, [], rules.scale_down, NOW) == 45
    none = ScalingRules(policies=(RatePolicy(PolicyType.PERCENT, 0, 60),))
    assert scale_down_limit(7, [], none, NOW) == 7


def test_rate_limit_never_reverses_direction() -> None:
    """A limit slows a move; it never turns a scale-up into a scale-down or the reverse."""
    assert rate_limit(5, 9, 5, 5) == 5
    assert rate_limit(5, 1, 5, 5) == 5
    assert rate_limit(5, 9, 3, 3) == 5
    assert rate_limit(5, 1, 7, 7) == 5
    assert rate_limit(5, 9, 6, 0) == 6


def test_stabilize_scales_up_at_once_and_down_to_the_window_maximum() -> None:
    """With no scale-up window: up to the recommendation; down to the highest in the window."""
    assert stabilize(4, 9, [], [1, 2]) == 9
    assert stabilize(10, 2, [], [2, 7, 3]) == 7
    assert stabilize(10, 2, [], [12]) == 10
    assert stabilize(10, 2, [], []) == 2


def test_window_past_midnight_belongs_to_the_day_it_started() -> None:
    """A Friday 22:00-06:00 window covers Saturday 03:00 but not Friday 03:00."""
    window = ScheduleWindow(start=time(22), end=time(6), min_replicas=1, days=parse_days(["fri"]))
    friday_night = datetime(2026, 1, 16, 23, 0, tzinfo=UTC)
    saturday_3am = datetime(2026, 1, 17, 3, 0, tzinfo=UTC)
    friday_3am = datetime(2026, 1, 16, 3, 0, tzinfo=UTC)
    assert window.contains(friday_night)
    assert window.contains(saturday_3am)
    assert not window.contains(friday_3am)
    assert not window.contains(datetime(2026, 1, 17, 6, 0, tzinfo=UTC))  # the end is exclusive


def test_schedule_reads_now_in_its_own_zone_across_daylight_saving() -> None:
    """00:00-06:00 Europe/Berlin is 23:00-05:00 UTC in winter and 22:00-04:00 in summer."""
    schedule = Schedule(
        timezone="Europe/Berlin", windows=(ScheduleWindow(time(0), time(6), min_replicas=1),)
    )
    assert schedule.active(datetime(2026, 1, 14, 23, 30, tzinfo=UTC)) is not None
    assert schedule.active(datetime(2026, 1, 14, 22, 30, tzinfo=UTC)) is None
    assert schedule.active(datetime(2026, 7, 14, 22, 30, tzinfo=UTC)) is not None
    assert schedule.active(datetime(2026, 7, 14, 4, 30, tzinfo=UTC)) is None


def test_first_active_window_wins() -> None:
    """Overlapping windows: the earlier one in the list sets the bounds."""
    first = ScheduleWindow(time(0), time(6), min_replicas=1)
    second = ScheduleWindow(time(2), time(4), min_replicas=3)
    schedule = Schedule(windows=(first, second))
    assert schedule.active(datetime(2026, 1, 14, 3, 0, tzinfo=UTC)) is first


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"start": time(6), "end": time(6), "min_replicas": 1}, "different start and end"),
        ({"start": time(0), "end": time(6)}, "min_replicas or max_replicas"),
        ({"start": time(0), "end": time(6), "min_replicas": 1, "days": frozenset({7})}, "0 "),
    ],
)
def test_windows_reject_nonsense(kwargs: dict[str, object], message: str) -> None:
    """Empty windows, windows that change nothing and day 7 are refused."""
    with pytest.raises(ValueError, match=message):
        ScheduleWindow(**kwargs)  # type: ignore[arg-type]  # deliberately loose test input


def test_parsers_accept_config_spellings() -> None:
    """Times as "HH:MM" or `time`; days as names, long names or numbers."""
    assert parse_time("06:30") == time(6, 30)
    assert parse_time(time(6, 30, tzinfo=UTC)) == time(6, 30)
    assert parse_days(["Mon", "friday", 6]) == frozenset({0, 4, 6})
    with pytest.raises(ValueError, match="unknown day"):
        parse_days(["someday"])
