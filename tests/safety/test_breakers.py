"""The circuit breaker's state machine, pinned by properties over arbitrary call sequences."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from jarvis.model import ErrorKind, Outcome, RetryState
from jarvis.safety.breakers import (
    BreakerPolicy,
    BreakerState,
    Phase,
    Transition,
    admits,
    counts,
    failed,
    fleet_threshold,
    forgive,
    provider_wide,
    rebased,
    succeeded,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
POLICY = BreakerPolicy(threshold=3, window=timedelta(minutes=5), cooldown=timedelta(minutes=5))
SOURCES = ["sim://a", "sim://b", "sim://c", "sim://d", "observe:sim:1"]

# (seconds after the previous call, failed?, source)
calls = st.lists(
    st.tuples(st.integers(0, 400), st.booleans(), st.sampled_from(SOURCES)), max_size=60
)


def run(sequence: list[tuple[int, bool, str]]) -> list[tuple[datetime, Transition, BreakerState]]:
    state, now, seen = BreakerState(), T0, []
    for gap, is_failure, source in sequence:
        now += timedelta(seconds=gap)
        if is_failure:
            state, transition = failed(state, POLICY, source, now)
        else:
            state, transition = succeeded(state, POLICY, now)
        seen.append((now, transition, state))
    return seen


@given(calls)
def test_alerts_alternate_open_then_closed(sequence: list[tuple[int, bool, str]]) -> None:
    """Every opening is followed by one closing before the next: one alert each, never two."""
    transitions = [t for _, t, _ in run(sequence) if t is not Transition.NONE]
    expected = [Transition.OPENED, Transition.CLOSED] * len(transitions)
    assert transitions == expected[: len(transitions)]


@given(st.lists(st.sampled_from(SOURCES[:2]), max_size=50))
def test_fewer_distinct_sources_than_the_threshold_never_open(sources: list[str]) -> None:
    """One or two resources failing again and again is their retry budget's business."""
    state = BreakerState()
    for i, source in enumerate(sources):
        state, transition = failed(state, POLICY, source, T0 + timedelta(seconds=i))
        assert transition is Transition.NONE
    assert state.phase(POLICY, T0 + timedelta(hours=1)) is Phase.CLOSED


@given(st.permutations(SOURCES[:3]), st.integers(0, 299))
def test_threshold_distinct_failures_in_the_window_open_it(sources: list[str], spread: int) -> None:
    """Three resources failing within the window open the breaker on the third."""
    state = BreakerState()
    steps = [T0, T0 + timedelta(seconds=spread // 2), T0 + timedelta(seconds=spread)]
    results = []
    for source, at in zip(sources, steps, strict=True):
        state, transition = failed(state, POLICY, source, at)
        results.append(transition)
    assert results == [Transition.NONE, Transition.NONE, Transition.OPENED]


def test_failures_outside_the_window_do_not_add_up() -> None:
    """Three failures spread wider than the window never open it."""
    state = BreakerState()
    for i, source in enumerate(SOURCES[:3]):
        state, transition = failed(state, POLICY, source, T0 + timedelta(minutes=6 * i))
        assert transition is Transition.NONE


@given(calls)
def test_an_open_breaker_admits_nothing_until_its_cooldown_passes(
    sequence: list[tuple[int, bool, str]],
) -> None:
    """Open: nothing passes; half-open: exactly one probe per tick; closed: everything."""
    for now, _, state in run(sequence):
        phase = state.phase(POLICY, now)
        if phase is Phase.OPEN:
            assert state.opened_at is not None and now < state.opened_at + POLICY.cooldown
            assert not admits(state, POLICY, now, probed=False)
        elif phase is Phase.HALF_OPEN:
            assert admits(state, POLICY, now, probed=False)
            assert not admits(state, POLICY, now, probed=True)
        else:
            assert admits(state, POLICY, now, probed=True)


def test_a_failed_probe_reopens_without_an_alert_and_a_good_one_closes() -> None:
    """Half-open: a failure restarts the cool-down silently; a success closes it with an alert."""
    state = BreakerState()
    for source in SOURCES[:3]:
        state, _ = failed(state, POLICY, source, T0)
    probe_at = T0 + POLICY.cooldown
    assert state.phase(POLICY, probe_at) is Phase.HALF_OPEN
    state, transition = failed(state, POLICY, "sim://a", probe_at)
    assert transition is Transition.NONE
    assert state.phase(POLICY, probe_at + timedelta(minutes=1)) is Phase.OPEN
    # A success while still cooling down does not close it.
    state, transition = succeeded(state, POLICY, probe_at + timedelta(minutes=1))
    assert transition is Transition.NONE
    later = probe_at + POLICY.cooldown
    state, transition = succeeded(state, POLICY, later)
    assert transition is Transition.CLOSED
    assert state == BreakerState()


def test_only_temporary_failures_and_timeouts_count() -> None:
    """A terminal error is about the request, a success about nothing: neither counts."""
    assert counts(Outcome.failure("Rate exceeded", code="Throttling"))
    assert counts(Outcome.timed_out("read timeout"))
    assert not counts(Outcome.failure("AccessDenied", kind=ErrorKind.TERMINAL))
    assert not counts(Outcome.success())


@given(st.integers(0, 100_000))
def test_the_fleet_threshold_is_max_three_and_half_the_fleet(size: int) -> None:
    """max(3, half the fleet), rounding an odd half up."""
    assert fleet_threshold(size) == max(3, -(-size // 2))


def test_forgiving_takes_back_the_attempt_and_its_failure_but_never_a_quarantine() -> None:
    """A refunded failure leaves no attempt, no consecutive failure and no backoff."""
    first, second = T0, T0 + timedelta(minutes=1)
    row = RetryState(
        "sim://a", "scale", attempts=(first, second), consecutive_failures=2, retry_after=second
    )
    charged = forgive(row, second, second, charged=True)
    assert charged.attempts == (first,)
    assert charged.consecutive_failures == 1
    assert charged.retry_after is None
    uncharged = forgive(row, second, second, charged=False)
    assert uncharged.attempts == (first,)
    assert uncharged.consecutive_failures == 2
    quarantined = RetryState("sim://a", "scale", attempts=(first,), quarantined=True)
    assert forgive(quarantined, first, second, charged=True) is quarantined


def test_throttling_5xx_and_timeouts_are_the_providers_by_their_nature() -> None:
    """Those count once per failure; a resource's own temporary error once per resource."""
    assert provider_wide(Outcome.failure("Rate exceeded", code="Throttling"))
    assert provider_wide(Outcome.failure("try again", code="InternalError"))
    assert provider_wide(Outcome.failure("503", code="HTTP503"))
    assert provider_wide(Outcome.failure("gRPC", code="UNAVAILABLE"))
    assert provider_wide(Outcome.timed_out("read timeout"))
    assert not provider_wide(Outcome.failure("ImagePullBackOff", code="RestartFailed"))
    assert not provider_wide(Outcome.failure("denied", kind=ErrorKind.TERMINAL, code="HTTP503"))


@given(calls, st.integers(0, 200_000))
def test_a_step_back_holds_an_open_breaker_one_cooldown_at_most(
    sequence: list[tuple[int, bool, str]], back: int
) -> None:
    """Rebased on a wall clock stepped back ``back`` s, a breaker admits again within one
    cool-down of the step; one that never saw the clock step back is left as it is."""
    for now, _, state in run(sequence):
        assert rebased(state, now) == state
        stepped = now - timedelta(seconds=back)
        after = rebased(state, stepped)
        assert after.opened_at is None or after.opened_at <= stepped
        assert all(t <= stepped for t, _ in after.failures)
        assert after.phase(POLICY, stepped + POLICY.cooldown) is not Phase.OPEN
