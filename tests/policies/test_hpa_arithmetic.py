"""The HPA's arithmetic is Kubernetes', float for float, where float noise decides.

``replica_calculator.go`` keeps the count while ``Tolerances.isWithin(usageRatio)``
(``1 - tolerance <= ratio <= 1 + tolerance``) and otherwise rounds a product up
with nothing rounded first; ``horizontal.go``'s rate limits round a percentage
of the period's start up (scale-up) or truncate it (scale-down) the same way.
Each row is worked out by hand below, in the floats Go computes. The policy once
rounded to 9 places first, and disagreed with Kubernetes wherever noise lifted or
lowered a product past a whole count (the CPU rows and the rate limits' noisy
cases): a scaling decision an SRE checks against Kubernetes must come out the same.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jarvis.model import History, Snapshot
from jarvis.policies.hpa import CPU, RPM, all_present, recommended_replicas, usable_recommendation
from jarvis.policies.hpa_behavior import (
    PolicyType,
    RatePolicy,
    ScalingRules,
    scale_down_limit,
    scale_up_limit,
)
from jarvis.policies.scaling import ScalingPolicy
from tests import actions as typed
from tests.policies.fleet import T0, TICK, service

NOW = datetime(2026, 1, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    ("name", "current", "value", "target", "expected"),
    [
        # 220 / (100 x 2) is the double nearest 1.1, and so is 1 + 0.1: inside the
        # band. (Before Kubernetes 1.33, |1 - 1.1| = 0.10000000000000009 > 0.1 scaled to 3.)
        (RPM, 2, 220.0, 100.0, 2),
        # 1 - 0.1 is the double nearest 0.9, and so is 180 / 200: inside.
        (RPM, 2, 180.0, 100.0, 2),
        # 290 / 70 x 7 = 29.000000000000004: rounded up, 30.
        (CPU, 7, 290.0, 70.0, 30),
        # 124 / 60 x 15 = 31.000000000000004: 32.
        (CPU, 15, 124.0, 60.0, 32),
        # A hair past the band: 77.00000001 / 70 = 1.1000000001428572 > 1 + 0.1, so
        # ceil(11.000000001428572) = 12.
        (CPU, 10, 77.00000001, 70.0, 12),
    ],
)
def test_a_count_is_what_kubernetes_computes(
    name: str, current: int, value: float, target: float, expected: int
) -> None:
    assert recommended_replicas(current, {name: value}, ((name, target),), 0.1) == expected


def _rules(kind: PolicyType, value: float) -> ScalingRules:
    return ScalingRules(policies=(RatePolicy(kind, value, 60),))


def test_a_percentage_of_the_period_s_start_is_rounded_as_kubernetes_rounds_it() -> None:
    """Up: ceil(25 x 1.12) = ceil(28.000000000000004) = 29. Down: int(10 x 0.2) truncates
    1.9999999999999996 (1 - 0.8 is 0.19999999999999996) to 1, as Go's int32() does."""
    assert scale_up_limit(25, (), _rules(PolicyType.PERCENT, 12), NOW) == 29
    assert scale_down_limit(10, (), _rules(PolicyType.PERCENT, 80), NOW) == 1
    # Without noise: ceil(10 x 1.1) = 11, int(10 x 0.7) = 7.
    assert scale_up_limit(10, (), _rules(PolicyType.PERCENT, 10), NOW) == 11
    assert scale_down_limit(10, (), _rules(PolicyType.PERCENT, 30), NOW) == 7


def test_a_metric_too_large_for_a_float_asks_for_the_most_replicas_a_count_can_hold() -> None:
    """1e308 % CPU over a 0.5 % target is an infinite ratio: no ``ceil`` of it, no crash.

    A broken metrics source that reports an absurd value asks for everything,
    as 1e300 already did, and the rule's maximum and rate limits bound it.
    Before, ``ceil(inf)`` raised, and the scaling policy failed for every
    service in the tick.
    """
    assert recommended_replicas(2, {CPU: 1e308}, ((CPU, 0.5),), 0.1) == 2**31 - 1
    assert recommended_replicas(2, {RPM: 1e308}, ((RPM, 0.001),), 0.1) == 2**31 - 1
    assert recommended_replicas(2, {CPU: 1e300}, ((CPU, 0.5),), 0.1) == 2**31 - 1


def test_one_service_s_absurd_metric_does_not_stop_the_others_scaling() -> None:
    """The fleet's other services are still judged; the absurd one scales up as far as allowed.

    From 2 replicas the default scale-up policies allow max(+100 %, +4) = 6.
    """
    policy = ScalingPolicy.from_config(
        {
            "rules": [
                {"match": "ecs://prod/*", "min_replicas": 1, "max_replicas": 10,
                 "target_cpu_utilization": 0.5}
            ]
        }
    )  # fmt: skip
    broken = service("ecs://prod/broken", metrics={"cpu_utilization": 1e308})
    busy = service("ecs://prod/busy", metrics={"cpu_utilization": 1.0})
    snapshot = Snapshot(taken_at=T0, resources={str(s.ref): s for s in (broken, busy)})
    evaluation = policy.evaluate(snapshot, History(), T0)
    counts = {str(a.target): typed.replicas(a) for a in evaluation.actions}
    assert counts == {"ecs://prod/broken": 6, "ecs://prod/busy": 4}


_ANY = st.floats() | st.sampled_from([0.0, 5e-324, 1e308, 1.7976931348623157e308])


@settings(max_examples=200, deadline=None)
@given(
    metrics=st.tuples(_ANY, _ANY, _ANY),
    targets=st.tuples(st.floats(1e-9, 100), st.floats(1e-9, 1e12), st.floats(1e-9, 1e9)),
    desired=st.integers(0, 50),
    bounds=st.tuples(st.integers(0, 3), st.integers(3, 60)),
)
def test_no_metric_value_makes_the_policy_raise(
    metrics: tuple[float, float, float],
    targets: tuple[float, float, float],
    desired: int,
    bounds: tuple[int, int],
) -> None:
    """NaN, infinities, zero, the smallest and the largest floats, over any valid targets:
    the policy decides or writes a note, over two ticks (the second reads the first as
    history), and never raises. A raise fails the policy for the whole fleet."""
    cpu, rpm, latency = metrics
    rule = {
        "match": "ecs://prod/*",
        "min_replicas": bounds[0],
        "max_replicas": bounds[1],
        "target_cpu_utilization": targets[0],
        "target_requests_per_minute": targets[1],
        "target_p95_latency_ms": targets[2],
    }
    policy = ScalingPolicy.from_config({"rules": [rule]})
    readings = {"cpu_utilization": cpu, "requests_per_minute": rpm, "p95_latency_ms": latency}
    past: list[Snapshot] = []
    for now in (T0, T0 + TICK):
        state = service(desired=desired, at=now, metrics=readings)
        snapshot = Snapshot(taken_at=now, resources={str(state.ref): state})
        policy.evaluate(snapshot, History(snapshots=tuple(past)), now)
        past.append(snapshot)


_SOME = _ANY | st.none()


@settings(max_examples=300, deadline=None)
@given(
    values=st.tuples(_SOME, _SOME, _SOME),
    targets=st.tuples(st.floats(1e-9, 100), st.floats(1e-9, 1e12), st.floats(1e-9, 1e9)),
    current=st.integers(1, 50),
    tolerance=st.sampled_from([0.0, 0.1, 0.25]),
    count=st.integers(1, 3),
)
def test_the_quiet_path_recommends_what_the_full_arithmetic_recommends(
    values: tuple[float | None, float | None, float | None],
    targets: tuple[float, float, float],
    current: int,
    tolerance: float,
    count: int,
) -> None:
    """`usable_recommendation` (its own copy of the per-metric arithmetic) is
    `recommended_replicas` when `all_present` holds, and None otherwise."""
    names = (CPU, RPM, "p95_latency_ms")
    pairs = tuple(zip(names, targets, strict=True))[:count]
    metrics = {name: value for name, value in zip(names, values, strict=True) if value is not None}
    expected = (
        recommended_replicas(current, metrics, pairs, tolerance)
        if all_present(metrics, pairs)
        else None
    )
    assert usable_recommendation(current, metrics, pairs, tolerance) == expected
