"""The scaling policy's per-tick staleness cut-off says what comparing ages says."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from jarvis.model import History
from jarvis.policies.scaling import ScalingPolicy
from jarvis.policies.scaling_tick import stale_before
from tests.policies.fleet import API, T0, service, snap

CONFIG = {"rules": [{"match": "ecs://*", "target_requests_per_minute": 100}]}
LIMIT = timedelta(seconds=120)
PARIS = ZoneInfo("Europe/Paris")
# 02:00 UTC on 29 March 2026 is 03:00 in Paris, an hour after its clocks went forward.
SPRING = datetime(2026, 3, 29, 1, 1, tzinfo=UTC)


def test_the_cut_off_is_now_less_the_limit_in_utc_and_naive_time() -> None:
    """UTC and naive times compare exactly, so the cut-off is a plain subtraction."""
    assert stale_before(T0, LIMIT) == T0 - LIMIT
    naive = T0.replace(tzinfo=None)
    assert stale_before(naive, LIMIT) == naive - LIMIT


def test_no_cut_off_in_a_zone_with_daylight_saving_or_before_year_one() -> None:
    """Where subtracting from now moves its wall clock, or overflows, ages are compared."""
    assert stale_before(SPRING.astimezone(PARIS), LIMIT) is None
    assert stale_before(datetime(1, 1, 1, 0, 1, tzinfo=UTC), LIMIT) is None


@pytest.mark.parametrize(
    ("now", "seen_in"),
    [
        (T0, None),
        (T0, PARIS),
        (T0.replace(tzinfo=None), None),
        (SPRING, None),
        (SPRING, PARIS),
        (SPRING.astimezone(PARIS), None),
        (SPRING.astimezone(PARIS), PARIS),
    ],
    ids=["utc", "utc-seen-in-paris", "naive", "spring-utc", "spring-utc-seen-in-paris",
         "spring-paris-seen-in-utc", "spring-paris"],
)  # fmt: skip
@pytest.mark.parametrize(
    "age", [LIMIT, LIMIT + timedelta(microseconds=1)], ids=["at-the-limit", "past-it"]
)
def test_a_quiet_service_is_stale_when_its_age_says_so(
    now: datetime, seen_in: ZoneInfo | None, age: timedelta
) -> None:
    """The policy's note agrees with ``now - observed_at > limit``, in any zone, at the edge.

    (Within one zone Python subtracts wall clocks: across the spring change,
    an observation 120 s old in UTC is an hour older on Paris's clock.)
    """
    observed = now - age if now.tzinfo is not PARIS else (now.astimezone(UTC) - age)
    if seen_in is not None:
        observed = observed.astimezone(seen_in)
    state = service(API, desired=4, at=observed, metrics={"requests_per_minute": 400})
    evaluation = ScalingPolicy.from_config(CONFIG).evaluate(snap(now, state), History(), now)
    assert evaluation.actions == ()
    stale = now - observed > LIMIT
    assert [n.key for n in evaluation.notes] == ([f"scaling:metrics:{API}"] if stale else [])


def test_at_the_limit_is_fresh_and_a_microsecond_past_it_is_stale() -> None:
    """In UTC, where the loop's clocks are, the edge is exactly the limit."""
    policy = ScalingPolicy.from_config(CONFIG)
    for age, notes in ((LIMIT, 0), (LIMIT + timedelta(microseconds=1), 1)):
        state = service(API, desired=4, at=T0 - age, metrics={"requests_per_minute": 400})
        assert len(policy.evaluate(snap(T0, state), History(), T0).notes) == notes
