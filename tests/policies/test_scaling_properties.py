"""Properties of the scaling policy over generated services, histories and traces."""

from __future__ import annotations

from datetime import time, timedelta
from itertools import accumulate

from hypothesis import given, settings
from hypothesis import strategies as st

from jarvis.model import History
from jarvis.policies.hpa import MetricTargets
from jarvis.policies.scaling import ScalingPolicy
from jarvis.policies.scaling_rules import ScalingRule
from jarvis.policies.schedule import Schedule, ScheduleWindow
from tests import actions as typed
from tests.policies.fleet import T0, drive, service, snap

WINDOW = timedelta(seconds=300)

load = st.fixed_dictionaries(
    {},
    optional={
        "requests_per_minute": st.floats(0, 100_000),
        "cpu_utilization": st.floats(0, 100),
        "p95_latency_ms": st.floats(0, 10_000),
    },
)


@st.composite
def rules(draw: st.DrawFn) -> ScalingRule:
    low = draw(st.integers(1, 10))
    high = draw(st.integers(low, 40))
    night_low = draw(st.integers(1, high))
    windows: tuple[ScheduleWindow, ...] = ()
    if draw(st.booleans()):
        windows = (ScheduleWindow(time(0), time(6), min_replicas=night_low),)
    targets = MetricTargets(
        cpu_utilization=draw(st.none() | st.floats(1, 100)),
        requests_per_minute=draw(st.floats(1, 1000)),
        p95_latency_ms=draw(st.none() | st.floats(10, 2000)),
    )
    return ScalingRule(
        match="*",
        targets=targets,
        min_replicas=low,
        max_replicas=high,
        price_per_replica_hour=0.1,
        schedule=Schedule(windows=windows),
    )


@given(
    rule=rules(),
    replicas=st.tuples(
        st.integers(1, 80), st.none() | st.integers(1, 50), st.none() | st.integers(1, 50)
    ),
    metrics=load,
    past=st.lists(st.tuples(st.integers(1, 600), st.integers(1, 80), load), max_size=20),
    minutes=st.integers(0, 24 * 60 - 1),
)
def test_never_proposes_outside_min_and_max(
    rule: ScalingRule,
    replicas: tuple[int, int | None, int | None],
    metrics: dict[str, float],
    past: list[tuple[int, int, dict[str, float]]],
    minutes: int,
) -> None:
    """Whatever the load and history, a proposal stays within the rule's and provider's bounds."""
    desired, *provider = replicas
    now = T0.replace(hour=0, minute=0) + timedelta(minutes=minutes)
    history = History(
        snapshots=tuple(
            snap(now - timedelta(seconds=ago), service(desired=d, at=now - timedelta(seconds=ago),
                                                       metrics=m))
            for ago, d, m in sorted(past, key=lambda p: -p[0])
        )
    )  # fmt: skip
    state = service(
        desired=desired, at=now, metrics=metrics, provider_min=provider[0], provider_max=provider[1]
    )
    evaluation = ScalingPolicy([rule]).evaluate(snap(now, state), history, now)
    low, high, _ = rule.bounds(now)
    low = max(low, provider[0] or low)
    high = min(high, provider[1] or high)
    for action in evaluation.actions:
        wanted = typed.replicas(action)
        assert wanted is not None
        assert low <= wanted <= high
        assert wanted != desired
    if low > high:
        assert evaluation.actions == ()


@settings(max_examples=60, deadline=None)
@given(
    base=st.floats(0, 2_000),
    steps=st.lists(st.floats(0, 300), min_size=30, max_size=30),
    rising=st.booleans(),
    metric=st.sampled_from(["requests_per_minute", "cpu_utilization"]),
    start=st.integers(1, 20),
)
def test_monotone_trace_never_goes_up_down_and_up_within_the_window(
    base: float, steps: list[float], rising: bool, metric: str, start: int
) -> None:
    """On a monotone load trace there is no up, down, up again inside 300 s.

    CPU is the monotone demand spread over the replicas serving it, which lag
    the desired count by a tick: the overshoot that makes an unstabilised
    autoscaler flap.
    """
    values = list(accumulate(steps, initial=base))[1:]
    if not rising:
        values.reverse()
    if metric == "cpu_utilization":
        targets = MetricTargets(cpu_utilization=60)
    else:
        targets = MetricTargets(requests_per_minute=100)

    def observe(tick: int, serving: int) -> dict[str, float]:
        if metric == "cpu_utilization":
            return {metric: min(100.0, values[tick] / serving)}
        return {metric: values[tick]}

    rule = ScalingRule(match="*", targets=targets, min_replicas=1, max_replicas=60)
    ticks = drive(
        ScalingPolicy([rule]),
        start=T0,
        ticks=len(values),
        replicas=start,
        metrics=observe,
    )
    moves = [(t.at, 1 if t.proposed > t.desired else -1) for t in ticks if t.proposed is not None]
    for i, (first_at, first) in enumerate(moves):
        later = [(at, d) for at, d in moves[i + 1 :] if at - first_at <= WINDOW]
        directions = [d for _, d in later]
        if first == 1 and -1 in directions:
            assert 1 not in directions[directions.index(-1) :], moves
    for t in ticks:
        assert 1 <= t.desired <= 60
