"""The failover policy as a pure function: hysteresis, safety of every step, one alert.

Ticks are simulated here by feeding each proposal back as the next snapshot's
weights, exactly as Route 53 would hold them after the write.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from jarvis.model import (
    DnsWeights,
    Health,
    History,
    ResourceRef,
    ResourceState,
    SetDnsWeights,
    Snapshot,
)
from jarvis.policies.failover import (
    FailoverGroup,
    FailoverPolicy,
    FailoverTarget,
    Signal,
    signal,
    step,
)

URI = "route53://Z1/api.example.com/A"
START = datetime(2026, 11, 1, tzinfo=UTC)
HEALTH = {
    Signal.GOOD: Health.HEALTHY,
    Signal.BAD: Health.UNHEALTHY,
    Signal.UNKNOWN: Health.DEGRADED,
}


def _group(weights: Mapping[str, int]) -> FailoverGroup:
    return FailoverGroup(
        URI,
        tuple(FailoverTarget(r, w, (f"endpoint://{r}",)) for r, w in sorted(weights.items())),
    )


def _snapshot(at: int, weights: Mapping[str, int], signals: Mapping[str, Signal]) -> Snapshot:
    now = START + timedelta(seconds=30 * at)
    resources = {
        f"endpoint://{r}": ResourceState(ResourceRef("endpoint", r, "endpoint"), HEALTH[s], now)
        for r, s in signals.items()
    }
    resources[URI] = ResourceState(
        ResourceRef.parse(URI, "dns_record"), Health.HEALTHY, now, dns_weights=DnsWeights(weights)
    )
    return Snapshot(taken_at=now, resources=resources)


def _run(
    policy: FailoverPolicy,
    weights: Mapping[str, int],
    ticks: Sequence[Mapping[str, Signal]],
) -> list[tuple[dict[str, int], dict[str, int], int]]:
    """(weights before, weights after, alerts) per tick, writes applied as proposed."""
    current = dict(weights)
    history: list[Snapshot] = []
    out = []
    for at, signals in enumerate(ticks):
        snapshot = _snapshot(at, current, signals)
        evaluation = policy.evaluate(snapshot, History(snapshots=tuple(history)), snapshot.taken_at)
        after = dict(current)
        for action in evaluation.actions:
            assert isinstance(action.params, SetDnsWeights)
            after = dict(action.params.record_weights)
        out.append((current, after, sum(n.alert for n in evaluation.notes)))
        history = [*history, snapshot][-policy.snapshots_needed :]
        current = after
    return out


GOOD, BAD, UNKNOWN = Signal.GOOD, Signal.BAD, Signal.UNKNOWN


def test_a_dark_target_loses_its_weight_after_n_ticks_and_regains_it_after_m() -> None:
    """Weight leaves after fail_ticks bad ticks, in bounded steps; returns after recover_ticks."""
    policy = FailoverPolicy(
        [_group({"use1": 100, "euw1": 100})], fail_ticks=2, recover_ticks=3, max_shift=64
    )
    health = [BAD] * 4 + [GOOD] * 5
    run = _run(policy, {"use1": 100, "euw1": 100}, [{"use1": h, "euw1": GOOD} for h in health])
    use1 = [after["use1"] for _, after, _ in run]
    assert use1 == [100, 36, 0, 0, 0, 0, 64, 100, 100]
    assert all(after["euw1"] == 100 for _, after, _ in run)


def test_a_standby_takes_the_weight_of_a_failed_primary_and_gives_it_back() -> None:
    """Active/passive: a standby configured at 0 carries the primary's weight while it is down."""
    policy = FailoverPolicy(
        [_group({"primary": 200, "standby": 0})], fail_ticks=1, recover_ticks=2, max_shift=255
    )
    health = [BAD, BAD, GOOD, GOOD, GOOD]
    run = _run(
        policy, {"primary": 200, "standby": 0}, [{"primary": h, "standby": GOOD} for h in health]
    )
    assert [after for _, after, _ in run] == [
        {"primary": 0, "standby": 200},
        {"primary": 0, "standby": 200},
        {"primary": 0, "standby": 200},
        {"primary": 200, "standby": 0},
        {"primary": 200, "standby": 0},
    ]


def test_when_every_target_fails_nothing_moves_and_one_alert_is_raised() -> None:
    """All failed: weights stay, and the alert fires on the tick it starts, not again."""
    policy = FailoverPolicy([_group({"a": 100, "b": 100})], fail_ticks=2, recover_ticks=2)
    run = _run(policy, {"a": 100, "b": 100}, [{"a": BAD, "b": BAD}] * 6)
    assert all(before == after for before, after, _ in run)
    assert [alerts for _, _, alerts in run] == [0, 1, 0, 0, 0, 0]


def test_weight_never_goes_to_a_target_that_is_not_healthy_now() -> None:
    """A standby whose own probe fails this tick gets nothing, even with the primary failed."""
    policy = FailoverPolicy([_group({"p": 100, "s": 0})], fail_ticks=1, recover_ticks=1)
    run = _run(policy, {"p": 100, "s": 0}, [{"p": BAD, "s": UNKNOWN}, {"p": BAD, "s": GOOD}])
    assert run[0][1] == {"p": 100, "s": 0}
    assert run[1][1] == {"p": 0, "s": 100}


def test_a_target_that_alternates_never_moves() -> None:
    """Bad, good, bad, good: neither streak reaches its threshold, so no write at all."""
    policy = FailoverPolicy([_group({"a": 100, "b": 100})], fail_ticks=2, recover_ticks=2)
    run = _run(
        policy, {"a": 100, "b": 100}, [{"a": BAD if i % 2 else GOOD, "b": GOOD} for i in range(20)]
    )
    assert all(before == after for before, after, _ in run)


def test_a_step_raises_only_good_records() -> None:
    """A record that is not good now keeps its weight whatever the desired weights say."""
    assert step({"a": 0, "b": 100}, {"a": 100, "b": 100}, frozenset({"b"}), 64) == {
        "a": 0,
        "b": 100,
    }


def test_a_step_keeps_weight_on_a_good_record() -> None:
    """The only good record carrying weight is never stepped down to 0."""
    assert step({"a": 30, "b": 100}, {"a": 0, "b": 100}, frozenset({"a"}), 64) == {
        "a": 30,
        "b": 100,
    }
    assert step({"a": 30, "b": 100}, {"a": 0, "b": 100}, frozenset({"a", "b"}), 64) == {
        "a": 0,
        "b": 100,
    }


signals = st.sampled_from([GOOD, BAD, UNKNOWN])
names = ("a", "b", "c")


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[FailoverPolicy, dict[str, int], list[dict[str, Signal]]]:
    count = draw(st.integers(2, 3))
    records = names[:count]
    configured = {r: draw(st.integers(0, 255)) for r in records}
    if not any(configured.values()):
        configured[records[0]] = 1
    policy = FailoverPolicy(
        [_group(configured)],
        fail_ticks=draw(st.integers(1, 4)),
        recover_ticks=draw(st.integers(1, 4)),
        max_shift=draw(st.integers(1, 255)),
    )
    start = {r: draw(st.integers(0, 255)) for r in records}
    if not any(start.values()):
        start[records[0]] = 1
    ticks = draw(st.lists(st.fixed_dictionaries(dict.fromkeys(records, signals)), max_size=25))
    return policy, start, ticks


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_every_step_is_safe_and_bounded(
    scenario: tuple[FailoverPolicy, dict[str, int], list[dict[str, Signal]]],
) -> None:
    """Only good records gain; a write leaves a good record weight; never all 0; bounded."""
    policy, start, ticks = scenario
    for (before, after, _), health in zip(_run(policy, start, ticks), ticks, strict=True):
        good = {r for r, s in health.items() if s is GOOD}
        assert any(after.values())
        for record in after:
            assert 0 <= after[record] <= 255
            assert abs(after[record] - before[record]) <= policy.max_shift
            if after[record] > before[record]:
                assert record in good, (before, after, health)
        if after != before:
            # A write never leaves the healthy targets without answers.
            assert any(after[r] for r in good), (before, after, health)


@settings(max_examples=300, deadline=None)
@given(
    st.integers(1, 4),
    st.integers(1, 4),
    st.lists(st.sampled_from([GOOD, BAD, UNKNOWN]), max_size=30),
)
def test_a_target_moves_only_after_its_streaks(
    fail: int, recover: int, health: list[Signal]
) -> None:
    """Beside a healthy peer, a falls only after fail bad ticks, rises only after recover good."""
    policy = FailoverPolicy(
        [_group({"a": 100, "b": 100})], fail_ticks=fail, recover_ticks=recover, max_shift=40
    )
    run = _run(policy, {"a": 100, "b": 100}, [{"a": h, "b": GOOD} for h in health])
    for index, (before, after, _) in enumerate(run):
        seen = health[: index + 1]
        assert after["b"] == 100
        if after["a"] < before["a"]:
            assert seen[-fail:] == [BAD] * fail
        if after["a"] > before["a"]:
            assert seen[-recover:] == [GOOD] * recover


@settings(max_examples=200, deadline=None)
@given(st.integers(2, 4), st.integers(2, 4), st.integers(4, 30))
def test_alternating_health_never_flaps(fail: int, recover: int, length: int) -> None:
    """Strictly alternating probes (with streak thresholds of 2 or more) never write."""
    policy = FailoverPolicy([_group({"a": 100, "b": 100})], fail_ticks=fail, recover_ticks=recover)
    ticks = [{"a": BAD if i % 2 else GOOD, "b": GOOD} for i in range(length)]
    assert all(before == after for before, after, _ in _run(policy, {"a": 100, "b": 100}, ticks))


def test_a_recovering_target_takes_over_when_the_other_fails() -> None:
    """Held at 0 while it proves itself, it still beats a target that has failed."""
    policy = FailoverPolicy(
        [_group({"a": 100, "b": 100})], fail_ticks=1, recover_ticks=5, max_shift=255
    )
    run = _run(policy, {"a": 0, "b": 100}, [{"a": GOOD, "b": BAD}])
    assert run[0][1] == {"a": 200, "b": 0}


def test_the_providers_observe_errors_are_a_second_signal() -> None:
    """A failed observe counts against a target whose endpoints are not healthy, never alone."""
    target = FailoverTarget("use1", 100, ("endpoint://use1",), sensor="ecs")
    now = START

    def judged(health: Health | None, errors: dict[str, str]) -> Signal:
        resources = {}
        if health is not None:
            ref = ResourceRef("endpoint", "use1", "endpoint")
            resources["endpoint://use1"] = ResourceState(ref, health, now)
        return signal(target, Snapshot(taken_at=now, resources=resources, errors=errors))

    failing = {"ecs": "Throttling: Rate exceeded"}
    assert judged(Health.DEGRADED, failing) is BAD
    assert judged(None, failing) is BAD
    assert judged(Health.HEALTHY, failing) is GOOD
    assert judged(Health.DEGRADED, {}) is UNKNOWN
    assert judged(Health.DEGRADED, {"kubernetes": "down"}) is UNKNOWN
    assert judged(Health.UNHEALTHY, {}) is BAD


def test_the_all_failed_alert_resolves_once_when_a_target_recovers() -> None:
    """Critical when every target has failed; resolved on the tick one stops failing; once each."""
    policy = FailoverPolicy([_group({"a": 100, "b": 100})], fail_ticks=2, recover_ticks=2)
    current: dict[str, int] = {"a": 100, "b": 100}
    health = [(BAD, BAD)] * 4 + [(BAD, GOOD)] * 3
    history: list[Snapshot] = []
    notes = []
    for at, (a, b) in enumerate(health):
        snapshot = _snapshot(at, current, {"a": a, "b": b})
        evaluation = policy.evaluate(snapshot, History(snapshots=tuple(history)), snapshot.taken_at)
        notes.append(
            [(n.payload.get("severity"), n.payload.get("resolved")) for n in evaluation.notes]
        )
        history.append(snapshot)
    assert notes == [[], [("critical", None)], [], [], [("critical", True)], [], []]


def test_a_missing_record_is_noted_once() -> None:
    """A configured set identifier the zone lacks: one note, then quiet while it stays so."""
    policy = FailoverPolicy([_group({"a": 100, "b": 100, "c": 100})])
    history: list[Snapshot] = []
    counts = []
    for at in range(3):
        snapshot = _snapshot(at, {"a": 100, "b": 100}, {"a": GOOD, "b": GOOD, "c": GOOD})
        evaluation = policy.evaluate(snapshot, History(snapshots=tuple(history)), snapshot.taken_at)
        counts.append((len(evaluation.actions), [n.message for n in evaluation.notes]))
        history.append(snapshot)
    assert counts == [(0, [f"failover: {URI} has no weighted record for c"]), (0, []), (0, [])]
