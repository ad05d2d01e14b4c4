"""The churn policy: risk from inactivity, trend and plan; one win-back per customer per window."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from jarvis.model import (
    CreateDiscount,
    Customer,
    Health,
    History,
    ResourceRef,
    ResourceState,
    SendEmail,
    Snapshot,
)
from jarvis.policies.churn import (
    ChurnPolicy,
    ChurnRules,
    RiskLevel,
    assess,
    decline,
    medium_risk,
    next_step,
)

NOW = datetime(2026, 11, 1, tzinfo=UTC)
DAY = timedelta(days=1)
RULES = ChurnRules()


def _customer(**fields: object) -> Customer:
    base = Customer(
        plan="free",
        signed_up_at=NOW - 200 * DAY,
        billing=True,
        welcomed=True,
        access=True,
        opted_out=False,
        last_active_at=NOW - DAY,
    )
    return replace(base, **fields)  # type: ignore[arg-type]


def _snapshot(**customers: Customer) -> Snapshot:
    states = [
        ResourceState(
            ref=ResourceRef("customer", name, kind="customer"),
            health=Health.HEALTHY,
            observed_at=NOW,
            detail=customer.stage(),
            customer=customer,
        )
        for name, customer in customers.items()
    ]
    return Snapshot(taken_at=NOW, resources={str(s.ref): s for s in states})


def test_the_seed_scenario_last_active_30_days_ago_is_high_risk_and_offered_a_discount() -> None:
    """Last active 30 days ago: risk high; a discount first, then the win-back email with it."""
    quiet = _customer(last_active_at=NOW - 30 * DAY)
    assert assess(quiet, NOW, RULES).level is RiskLevel.HIGH
    first = ChurnPolicy().evaluate(_snapshot(c1=quiet), History(), NOW).actions
    assert [(str(a.target), a.params) for a in first] == [
        ("customer://c1", CreateDiscount(percent_off=20, valid_days=14))
    ]
    assert first[0].reason == "churn risk high: inactive 30 days, usage down 0%"
    offered = replace(quiet, discount_at=NOW)
    second = ChurnPolicy().evaluate(_snapshot(c1=offered), History(), NOW).actions
    assert [a.params for a in second] == [SendEmail(template="win_back")]
    sent = replace(offered, reengaged_at=NOW)
    assert ChurnPolicy().evaluate(_snapshot(c1=sent), History(), NOW).actions == ()


def test_inactivity_sets_the_level_at_14_and_30_days() -> None:
    """13 days is low, 14 medium, 29 medium, 30 high."""
    levels = [
        assess(_customer(last_active_at=NOW - days * DAY), NOW, RULES).level
        for days in (13, 14, 29, 30)
    ]
    assert levels == [RiskLevel.LOW, RiskLevel.MEDIUM, RiskLevel.MEDIUM, RiskLevel.HIGH]


def test_a_customer_never_active_counts_from_sign_up() -> None:
    """No activity at all: the days since sign-up are the days of silence."""
    never = _customer(last_active_at=None, signed_up_at=NOW - 31 * DAY)
    assert assess(never, NOW, RULES).level is RiskLevel.HIGH


def test_a_paying_customer_whose_use_falls_steeply_is_at_risk_earlier() -> None:
    """Usage halving: medium for a paying customer at once, high from 14 days; free stays low."""
    falling = (100, 90, 110, 20)
    assert decline(falling) == 1 - 20 / 100
    paying = _customer(plan="pro", weekly_usage=falling)
    assert assess(paying, NOW, RULES).level is RiskLevel.MEDIUM
    assert assess(replace(paying, plan="free"), NOW, RULES).level is RiskLevel.LOW
    quiet = replace(paying, last_active_at=NOW - 15 * DAY)
    assert assess(quiet, NOW, RULES).level is RiskLevel.HIGH
    assert assess(replace(quiet, plan="free"), NOW, RULES).level is RiskLevel.MEDIUM


def test_a_steady_or_growing_trend_adds_no_risk() -> None:
    """Growth and steady use decline 0; too few weeks say nothing."""
    assert decline((10, 20, 30, 40)) == 0.0
    assert decline((0, 0, 0, 0)) == 0.0
    assert decline((5,)) == 0.0


def test_opted_out_cancelled_or_unbilled_customers_are_never_won_back() -> None:
    """Marketing refused, subscription cancelled, or no Stripe customer: no proposal."""
    quiet = _customer(last_active_at=NOW - 40 * DAY)
    snapshot = _snapshot(
        a=replace(quiet, opted_out=True),
        b=replace(quiet, subscription_status="canceled"),
        c=replace(quiet, billing=False),
        d=quiet,
    )
    actions = ChurnPolicy().evaluate(snapshot, History(), NOW).actions
    assert [str(a.target) for a in actions] == ["customer://d"]


def test_a_win_back_waits_30_days_and_a_stale_discount_is_replaced() -> None:
    """29 days after the last win-back nothing; at 30 a new discount; an expired one is redone."""
    quiet = _customer(last_active_at=NOW - 90 * DAY)
    assert next_step(replace(quiet, reengaged_at=NOW - 29 * DAY), NOW, RULES) is None
    step = next_step(replace(quiet, reengaged_at=NOW - 30 * DAY), NOW, RULES)
    assert step is not None
    assert isinstance(step[0], CreateDiscount)
    expired = replace(quiet, discount_at=NOW - 15 * DAY)
    step = next_step(expired, NOW, RULES)
    assert step is not None
    assert isinstance(step[0], CreateDiscount)


def test_medium_risk_customers_are_listed_by_id() -> None:
    """The daily report's list: medium only, sorted."""
    customers = {
        "z": _customer(last_active_at=NOW - 20 * DAY),
        "a": _customer(last_active_at=NOW - 15 * DAY),
        "high": _customer(last_active_at=NOW - 31 * DAY),
        "low": _customer(),
    }
    assert medium_risk(customers, NOW, RULES) == ["a", "z"]


_times = st.none() | st.integers(min_value=0, max_value=120).map(lambda d: NOW - d * DAY)
_customers = st.builds(
    Customer,
    plan=st.sampled_from(["free", "pro", "team"]),
    signed_up_at=st.just(NOW - 400 * DAY),
    billing=st.booleans(),
    welcomed=st.booleans(),
    access=st.booleans(),
    opted_out=st.booleans(),
    subscription_status=st.sampled_from([None, "active", "past_due", "canceled", "unpaid"]),
    last_active_at=_times,
    weekly_usage=st.lists(st.integers(min_value=0, max_value=500), max_size=6).map(tuple),
    reengaged_at=_times,
    discount_at=_times,
)


@settings(max_examples=300, deadline=None)
@given(customers=st.dictionaries(st.sampled_from(list("abcdefgh")), _customers, max_size=8))
def test_no_win_back_step_for_an_opted_out_cancelled_or_recent_customer(
    customers: dict[str, Customer],
) -> None:
    """Whatever the customers, no step targets one opted out, cancelled or won back lately."""
    actions = ChurnPolicy().evaluate(_snapshot(**customers), History(), NOW).actions
    for action in actions:
        customer = customers[action.target.name]
        assert not customer.opted_out
        assert customer.subscription_status != "canceled"
        assert customer.reengaged_at is None or NOW - customer.reengaged_at >= 30 * DAY
        assert assess(customer, NOW, RULES).level is RiskLevel.HIGH
    assert len({a.target for a in actions}) == len(actions)


@settings(max_examples=200, deadline=None)
@given(
    customer=_customers.map(lambda c: replace(c, reengaged_at=None, discount_at=None)),
    days=st.lists(st.integers(min_value=0, max_value=200), min_size=1, max_size=40),
)
def test_following_the_policy_sends_at_most_one_win_back_per_30_days(
    customer: Customer, days: list[int]
) -> None:
    """Applying every proposed step on any days in order never sends two emails 30 days apart."""
    sent: list[datetime] = []
    for day in sorted(days):
        now = NOW + day * DAY
        step = next_step(customer, now, RULES)
        if step is None:
            continue
        if isinstance(step[0], CreateDiscount):
            customer = replace(customer, discount_at=now)
        else:
            sent.append(now)
            customer = replace(customer, reengaged_at=now)
    assert all(later - earlier >= 30 * DAY for earlier, later in itertools.pairwise(sent))
