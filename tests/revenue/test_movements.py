"""MRR movements per customer: upgrade, downgrade, cancel, new, reactivation, and the identity."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jarvis.model import BookEntry, Movement, RevenueDay, Subscription, customer_mrr, settle

PRICES = {"starter": 19.0, "pro": 49.0, "team": 1200.0 / 12}
DAY = date(2026, 3, 10)


def subs(**plans: tuple[str, str | None]) -> list[Subscription]:
    return [Subscription(cid, plan, status) for cid, (plan, status) in plans.items()]


def days(*states: list[Subscription]) -> list[RevenueDay]:
    """Settle one day per state in order, carrying the book, as the ledger does."""
    book: dict[str, BookEntry] = {}
    out = []
    for n, state in enumerate(states):
        revenue, changed = settle(DAY + timedelta(days=n), state, book, PRICES)
        book.update(changed)
        out.append(revenue)
    return out


def test_each_change_of_plan_or_status_is_its_own_movement() -> None:
    """Upgrade is expansion, downgrade contraction, cancel churned, a sign-up new."""
    first = subs(a=("starter", "active"), b=("team", "active"), c=("pro", "active"))
    second = subs(
        a=("pro", "active"),  # upgrade
        b=("pro", "active"),  # downgrade
        c=("pro", "canceled"),  # cancel
        d=("starter", "active"),  # new
        e=("pro", "trialing"),  # a trial pays nothing yet
    )
    _, day = days(first, second)
    assert day.moved == {
        Movement.NEW: 19.0,
        Movement.EXPANSION: 30.0,
        Movement.CONTRACTION: 51.0,
        Movement.CHURNED: 49.0,
    }
    assert day.mrr_usd == 49.0 + 49.0 + 19.0
    assert day.customers == {"active": 3, "canceled": 1, "trialing": 1}
    assert day.paying == 3


def test_a_reactivation_is_new_mrr_not_expansion() -> None:
    """A customer who paid, cancelled and pays again brings new MRR (see jarvis.model.revenue)."""
    paid = subs(a=("pro", "active"))
    cancelled = subs(a=("pro", "canceled"))
    back = subs(a=("team", "active"))
    _, gone, returned = days(paid, cancelled, back)
    assert gone.moved == {Movement.CHURNED: 49.0}
    assert returned.moved == {Movement.NEW: 100.0}


def test_past_due_still_counts_and_unpaid_is_churn() -> None:
    """Stripe retries a past-due invoice: MRR holds; unpaid ends it."""
    _, due, unpaid = days(
        subs(a=("pro", "active")), subs(a=("pro", "past_due")), subs(a=("pro", "unpaid"))
    )
    assert (due.mrr_usd, due.moved) == (49.0, {})
    assert (unpaid.mrr_usd, unpaid.moved) == (0.0, {Movement.CHURNED: 49.0})


def test_a_deleted_customer_churns_everything_it_paid() -> None:
    """A paying customer missing from the table is at zero."""
    _, day = days(subs(a=("pro", "active"), b=("starter", "active")), subs(b=("starter", "active")))
    assert day.moved == {Movement.CHURNED: 49.0}


def test_settling_a_day_twice_gives_the_same_day() -> None:
    """The second settlement of a day measures from the same baseline, not from the first."""
    book: dict[str, BookEntry] = {}
    _, changed = settle(DAY, subs(a=("starter", "active")), book, PRICES)
    book.update(changed)
    later = subs(a=("pro", "active"), b=("pro", "active"))
    first, changed = settle(DAY + timedelta(days=1), later, book, PRICES)
    book.update(changed)
    again, changed = settle(DAY + timedelta(days=1), later, book, PRICES)
    assert first == again
    assert changed == {}
    assert first.moved == {Movement.NEW: 49.0, Movement.EXPANSION: 30.0}


def test_a_change_undone_within_the_day_is_no_movement() -> None:
    """Upgrade at noon, downgrade back before the day's last settlement: nothing moved."""
    book: dict[str, BookEntry] = {}
    _, changed = settle(DAY, subs(a=("starter", "active")), book, PRICES)
    book.update(changed)
    tomorrow = DAY + timedelta(days=1)
    noon, changed = settle(tomorrow, subs(a=("pro", "active")), book, PRICES)
    book.update(changed)
    evening, _ = settle(tomorrow, subs(a=("starter", "active")), book, PRICES)
    assert noon.moved == {Movement.EXPANSION: 30.0}
    assert evening.moved == {}


def test_a_paying_customer_on_an_unpriced_plan_is_counted_not_invented() -> None:
    """No price: zero MRR, one unpriced customer for the report to show."""
    (day,) = days(subs(a=("enterprise", "active")))
    assert (day.mrr_usd, day.unpriced, day.paying) == (0.0, 1, 1)
    assert customer_mrr("pro", None, PRICES) == 0.0


def test_a_day_before_the_last_settled_cannot_be_settled() -> None:
    """The customers table holds only now: yesterday is history."""
    book = {"a": BookEntry(49.0, DAY, 0.0)}
    with pytest.raises(ValueError, match="cannot be settled"):
        settle(DAY - timedelta(days=1), subs(a=("pro", "active")), book, PRICES)


STATES = st.lists(
    st.dictionaries(
        st.sampled_from("abcdef"),
        st.tuples(
            st.sampled_from([*PRICES, "free"]),
            st.sampled_from(["active", "past_due", "canceled", "unpaid", "trialing", None]),
        ),
    ),
    min_size=1,
    max_size=8,
)


@given(STATES, st.lists(st.booleans(), min_size=8, max_size=8))
def test_mrr_moves_by_exactly_its_movements(
    states: list[dict[str, tuple[str, str | None]]], same_day: list[bool]
) -> None:
    """mrr(day) = mrr(day before) + new + expansion - contraction - churned, always."""
    book: dict[str, BookEntry] = {}
    day = DAY
    settled: dict[date, float] = {}
    for state, stay in zip(states, same_day, strict=False):
        if not stay:
            day += timedelta(days=1)
        revenue, changed = settle(day, subs(**state), book, PRICES)
        book.update(changed)
        assert all(v > 0 for v in revenue.moved.values())
        earlier = [d for d in settled if d < day]
        before = settled[max(earlier)] if earlier else 0.0
        assert revenue.mrr_usd == pytest.approx(before + revenue.net_usd)
        settled[day] = revenue.mrr_usd
