"""The scaling policy against Kubernetes' own HPA algorithm (`tests.policies.k8s_hpa`).

Tables replay load traces through both, one sync per 30 s tick, and pin the
counts Kubernetes computes; a property replays arbitrary traces and behaviors
and requires the two to agree on every tick. Each trace starts with steady
ticks at the target load, so the policy's history covers its windows (a fresh
Jarvis process does not scale down on a window it has not seen).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jarvis.model import History, Snapshot
from jarvis.policies.scaling import ScalingPolicy
from tests import actions as typed
from tests.policies.fleet import T0, TICK, service
from tests.policies.k8s_hpa import Hpa, Policy, Rules

TARGET = 100.0  # requests per minute per replica
WARM = 12  # ticks of steady load first: 360 s of history covers any window here


def config_of(hpa: Hpa) -> dict[str, Any]:
    """The same HPA as Jarvis's ``[scaling]`` settings."""

    def policies(rules: Rules) -> list[dict[str, Any]]:
        return [
            {"type": p.type, "value": p.value, "period_seconds": p.period_seconds}
            for p in rules.policies
        ]

    return {
        "tolerance": hpa.tolerance,
        "scale_up_stabilization_seconds": hpa.scale_up.stabilization_window_seconds,
        "stabilization_seconds": hpa.scale_down.stabilization_window_seconds,
        "scale_up_select": hpa.scale_up.select_policy,
        "scale_down_select": hpa.scale_down.select_policy,
        "scale_up_policies": policies(hpa.scale_up),
        "scale_down_policies": policies(hpa.scale_down),
        "rules": [
            {
                "match": "ecs://prod/*",
                "min_replicas": hpa.min_replicas,
                "max_replicas": hpa.max_replicas,
                "target_requests_per_minute": TARGET,
            }
        ],
    }


def kubernetes(hpa: Hpa, start: int, loads: Sequence[float]) -> list[int]:
    """The count after each sync, as the controller sets it."""
    counts, current = [], start
    for i, load in enumerate(loads):
        current = hpa.sync(T0 + i * TICK, current, load)
        counts.append(current)
    return counts


def jarvis(config: dict[str, Any], start: int, loads: Sequence[float]) -> list[int]:
    """The count after each tick, applying each proposal as the loop would."""
    policy = ScalingPolicy.from_config(config)
    past: list[Snapshot] = []
    counts, current = [], start
    for i, load in enumerate(loads):
        now = T0 + i * TICK
        state = service(desired=current, at=now, metrics={"requests_per_minute": load})
        snapshot = Snapshot(taken_at=now, resources={str(state.ref): state})
        evaluation = policy.evaluate(snapshot, History(snapshots=tuple(past)), now)
        past.append(snapshot)
        if evaluation.actions:
            replicas = typed.replicas(evaluation.actions[0])
            assert replicas is not None
            current = replicas
        counts.append(current)
    return counts


def warm(start: int, loads: Sequence[float]) -> list[float]:
    return [start * TARGET] * WARM + list(loads)


def up(window: int, select: str, *policies: Policy) -> Rules:
    return Rules(window, select, policies)  # type: ignore[arg-type]


PCT100_15 = Policy("percent", 100, 15)
PODS4_15 = Policy("pods", 4, 15)

#: (case, hpa, start, loads after the warm-up, counts Kubernetes sets after each)
TABLE = [
    (
        "defaults: up by max(+100%, +4) per 15 s, so every 30 s tick may double",
        Hpa(1, 40, up(0, "max", PCT100_15, PODS4_15), up(300, "max", PCT100_15)),
        2,
        [3000, 3000, 3000, 3000],
        [6, 12, 24, 30],
    ),
    (
        "scale-up window 90 s: held while the window holds a lower recommendation",
        Hpa(1, 40, up(90, "max", PCT100_15, PODS4_15), up(300, "max", PCT100_15)),
        4,
        # 90 s after the last steady tick its recommendation (4) leaves the window;
        # the drop to 600 does not scale down: the 300 s window holds 10.
        [1000, 1000, 1000, 1000, 600, 1000],
        [4, 4, 8, 10, 10, 10],
    ),
    (
        "scale-down selectPolicy Min: the smaller change of -1 pod and -50% per 60 s",
        Hpa(1, 40, up(0, "max", PCT100_15), up(0, "min", Policy("pods", 1, 60),
                                                   Policy("percent", 50, 60))),
        10,
        [100] * 8,
        [9, 9, 8, 8, 7, 7, 6, 6],
    ),
    (
        "scale-down selectPolicy Max: the larger change of the two",
        Hpa(1, 40, up(0, "max", PCT100_15), up(0, "max", Policy("pods", 1, 60),
                                                   Policy("percent", 50, 60))),
        10,
        [100] * 6,
        [5, 5, 2, 2, 1, 1],
    ),
    (
        "scale-down Disabled: load drops and the count stays",
        Hpa(1, 40, up(0, "max", PCT100_15), up(0, "disabled")),
        8,
        [100] * 4 + [2000],
        [8, 8, 8, 8, 16],
    ),
    (
        "scale-up Disabled: load rises and the count stays",
        Hpa(1, 40, up(0, "disabled"), up(0, "max", PCT100_15)),
        3,
        [2000, 2000, 100],
        [3, 3, 1],
    ),
    (
        "a period per policy, Min: +1 pod per 30 s and +100% per 120 s, the smaller",
        Hpa(1, 40, up(0, "min", Policy("pods", 1, 30), Policy("percent", 100, 120)),
            up(300, "max", PCT100_15)),
        2,
        [2000] * 8,
        [3, 4, 4, 4, 5, 6, 7, 8],
    ),
    (
        "window boundary: a recommendation exactly 60 s old is outside the window",
        Hpa(1, 40, up(0, "max", PCT100_15, PODS4_15), up(60, "max", PCT100_15)),
        6,
        # The last 6 is recommended at the first tick; 60 s later it is out.
        [600, 300, 300, 300],
        [6, 6, 3, 3],
    ),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "hpa", "start", "loads", "expected"), TABLE, ids=[row[0][:60] for row in TABLE]
)
def test_the_policy_scales_as_kubernetes_computes(
    case: str, hpa: Hpa, start: int, loads: list[float], expected: list[int]
) -> None:
    """Each trace gives the counts Kubernetes' algorithm sets, tick by tick."""
    config = config_of(hpa)
    trace = warm(start, loads)
    assert kubernetes(hpa, start, trace)[WARM:] == expected, "the oracle's own pin"
    assert jarvis(config, start, trace)[WARM:] == expected, case


policies = st.builds(
    Policy,
    type=st.sampled_from(["pods", "percent"]),
    value=st.integers(0, 200),
    period_seconds=st.sampled_from([15, 30, 45, 60, 90, 120, 180]),
)


rules = st.builds(
    Rules,
    stabilization_window_seconds=st.sampled_from([0, 30, 45, 60, 90, 120, 300]),
    select_policy=st.sampled_from(["max", "min", "disabled"]),
    policies=st.lists(policies, min_size=1, max_size=3).map(tuple),
)


@settings(max_examples=150, deadline=None)
@given(
    scale_up=rules,
    scale_down=rules,
    bounds=st.tuples(st.integers(1, 4), st.integers(5, 40)),
    loads=st.lists(st.integers(0, 4000).map(float), min_size=1, max_size=30),
)
def test_the_policy_agrees_with_kubernetes_on_any_trace(
    scale_up: Rules, scale_down: Rules, bounds: tuple[int, int], loads: list[float]
) -> None:
    """Whatever the behavior and the load, every tick's count is Kubernetes' count."""
    low, high = bounds
    start = low
    hpa = Hpa(low, high, scale_up, scale_down)
    config = config_of(hpa)
    trace = warm(start, loads)
    assert jarvis(config, start, trace) == kubernetes(hpa, start, trace)


def test_the_window_boundary_moved_the_scale_down_a_tick_earlier() -> None:
    """At 300 s after the last high recommendation the window no longer holds it."""
    hpa = Hpa(1, 40, up(0, "max", PCT100_15, PODS4_15), up(300, "max", PCT100_15))
    trace = warm(10, [1000] + [200] * 12)
    counts = jarvis(config_of(hpa), 10, trace)[WARM:]
    first_down = next(i for i, c in enumerate(counts) if c < 10)
    assert timedelta(seconds=30) * first_down == timedelta(seconds=300)
