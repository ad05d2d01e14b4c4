"""Simulated customers: onboarded, dunned and won back by the real policies through the real guard.

The invariants are shown to fail two ways: on hand-built witness records (each
broken guarantee alone), and in runs whose policy is broken on purpose (a
"win-back" that mails every customer every tick, a "dunning" that shuts out
customers who pay), which the real loop applies and the checker must catch.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from jarvis.model import (
    CUSTOMER_SCHEME,
    Action,
    History,
    ResourceRef,
    Restart,
    RevokeAccess,
    SendEmail,
    Snapshot,
)
from jarvis.policies.base import Evaluation
from jarvis.policies.onboarding import OnboardingPolicy
from jarvis.simulation import (
    InvariantChecker,
    ProviderCall,
    Rules,
    SimulationConfig,
    run_simulation,
    simulation_settings,
)
from jarvis.simulation.customer_scenario import Row
from jarvis.simulation.customers import AccessChange, Sent, SimulatedCustomers, StripeCall
from jarvis.simulation.faults import FaultKind
from jarvis.simulation.invariant_records import CUSTOMER_INVARIANTS

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(900)]

T0 = datetime(2026, 1, 5, 8, tzinfo=UTC)
RULES = Rules(
    allow=(),
    max_actions_per_tick=10,
    max_replicas=20,
    max_attempts=3,
    retry_window=timedelta(hours=1),
)


def violations(
    calls: list[ProviderCall] = [],  # noqa: B006 -- never mutated
    sends: list[Sent] = [],  # noqa: B006 -- never mutated
    stripe: list[StripeCall] = [],  # noqa: B006 -- never mutated
    access: list[AccessChange] = [],  # noqa: B006 -- never mutated
) -> list[str]:
    checker = InvariantChecker(RULES)
    checker.feed_calls(calls)
    checker.feed_customers(sends, stripe, access)
    checker.end_tick(None, [], settled=False)
    return sorted({v.invariant for v in checker.violations} - {"allowlist_bounds"})


def email_call(seq: int, customer: str = "c1") -> ProviderCall:
    action = Action(ResourceRef(CUSTOMER_SCHEME, customer), SendEmail("welcome"), "t", "why")
    return ProviderCall(seq, T0, "apply", action)


def sent(days: float, template: str = "welcome", customer: str = "c1") -> Sent:
    return Sent(T0 + timedelta(days=days), customer, template, opted_out=False)


def test_a_welcome_email_goes_once_ever_and_others_once_in_thirty_days() -> None:
    """A second welcome a year later, or a win-back 29 days after the last, is a violation."""
    assert violations(sends=[sent(0), sent(365)]) == ["email_window"]
    assert violations(sends=[sent(0, "winback"), sent(29, "winback")]) == ["email_window"]
    assert violations(sends=[sent(0, "winback"), sent(30, "winback")]) == []
    assert violations(sends=[sent(0), sent(0, customer="c2")]) == []


def test_a_marketing_email_to_an_opted_out_customer_is_caught_a_transactional_one_is_not() -> None:
    """Opted out: no win-back; the welcome email still goes."""
    assert violations(sends=[Sent(T0, "c1", "winback", True)]) == ["email_opt_out"]
    assert violations(sends=[Sent(T0, "c1", "welcome", True)]) == []


def test_an_email_reaching_the_mailer_while_the_switch_is_engaged_is_caught() -> None:
    """Engaged or unreadable: any send_email the mailer receives is a violation."""
    engaged = [ProviderCall(0, T0, "engage"), email_call(1)]
    assert "email_killswitch" in violations(calls=engaged)
    unreadable = [ProviderCall(0, T0, "switch_down"), email_call(1)]
    assert "email_killswitch" in violations(calls=unreadable)
    released = [ProviderCall(0, T0, "engage"), ProviderCall(1, T0, "release"), email_call(2)]
    assert "email_killswitch" not in violations(calls=released)
    restart = Action(ResourceRef("sim", "api"), Restart(), "t", "why")
    assert "email_killswitch" not in violations(
        calls=[ProviderCall(0, T0, "engage"), ProviderCall(1, T0, "apply", restart)]
    )


def test_a_payment_failed_email_goes_once_per_invoice() -> None:
    """A second letter for one invoice, even two months on, is caught; another invoice's is not."""
    first = sent(0, "payment_failed")
    same = Sent(T0 + timedelta(days=60), "c1", "payment_failed", False, about="in_1")
    assert violations(sends=[replace(first, about="in_1"), same]) == ["email_window"]
    other = replace(same, at=T0 + timedelta(days=1), about="in_2")
    assert violations(sends=[replace(first, about="in_1"), other]) == []


def test_a_win_back_within_thirty_days_of_one_before_the_run_is_caught() -> None:
    """The row's last win-back counts, though the witness never saw it go."""
    back = Sent(T0, "c1", "win_back", False, about="BACK-1", previous=T0 - timedelta(days=10))
    assert violations(sends=[back]) == ["email_window"]
    assert violations(sends=[replace(back, previous=T0 - timedelta(days=31))]) == []


def test_a_win_back_to_a_cancelled_customer_is_caught() -> None:
    """Cancelled when it went: a violation; past due: not."""
    assert violations(sends=[Sent(T0, "c1", "win_back", False, status="canceled")]) == [
        "email_cancelled"
    ]
    assert violations(sends=[Sent(T0, "c1", "win_back", False, status="past_due")]) == []


def test_access_moves_only_as_stripe_says() -> None:
    """Revoked while active or past due, or granted while unpaid: caught; the reverse is not."""
    assert violations(access=[AccessChange(T0, "c1", False, "active")]) == ["access_billing"]
    assert violations(access=[AccessChange(T0, "c1", False, "past_due")]) == ["access_billing"]
    assert violations(access=[AccessChange(T0, "c1", True, "unpaid")]) == ["access_billing"]
    assert violations(access=[AccessChange(T0, "c1", False, "unpaid")]) == []
    assert violations(access=[AccessChange(T0, "c1", False, "canceled")]) == []
    assert violations(access=[AccessChange(T0, "c1", True, None)]) == []


def test_a_stripe_call_without_an_idempotency_key_is_caught() -> None:
    """Every request Stripe receives carries a key: customer, coupon and promotion code alike."""
    for method in ("customers.create", "coupons.create", "promotion_codes.create"):
        assert violations(stripe=[StripeCall(T0, "c1", method, None)]) == ["stripe_key"]
        assert violations(stripe=[StripeCall(T0, "c1", method, "k")]) == []


def test_the_simulated_stripe_replays_a_key_like_stripe() -> None:
    """The same key twice returns the customer, or the promotion code, made the first time."""
    world = SimulatedCustomers.of(
        [Row(c, "pro", T0, "active", T0) for c in ("c1", "c2")], prices={}
    )
    first = world.create_billing_customer("c1", "key-1", T0)
    assert world.create_billing_customer("c1", "key-1", T0) == first
    assert world.create_billing_customer("c2", "key-2", T0) != first
    code = world.create_discount("c1", "key-3", T0)
    assert world.create_discount("c1", "key-3", T0) == code
    assert world.create_discount("c2", "key-4", T0) != code
    assert world.discounts == 2
    keys = [(c.method, c.idempotency_key) for c in world.stripe_calls if c.customer == "c1"][2:4]
    assert keys == [("coupons.create", "key-3-coupon"), ("promotion_codes.create", "key-3")]


def test_the_facet_carries_activity_and_billing_from_the_world() -> None:
    """Through the real sensor's builder: last use, weekly counts that fade, the unpaid invoice."""
    quiet = Row("c1", "pro", T0 - timedelta(days=90), "past_due", T0, rate=10)
    quiet.stopped_at = quiet.last_active_at = T0 - timedelta(days=20)
    quiet.unpaid_invoice = "in_1"
    steady = Row("c2", "free", T0 - timedelta(days=90), None, T0, rate=10)
    world = SimulatedCustomers.of([quiet, steady], prices={})
    now = T0 + timedelta(days=1)
    world.advance(now)
    facets = {s.ref.name: s.customer for s in world.states(now)}
    gone, used = facets["c1"], facets["c2"]
    assert gone is not None and used is not None
    assert gone.last_active_at == T0 - timedelta(days=20)
    assert gone.unpaid_invoice == "in_1" and gone.subscription_status == "past_due"
    assert used.last_active_at == now
    assert used.weekly_usage == (70, 70, 70, 70)
    assert len(gone.weekly_usage) == 4 and gone.weekly_usage[-1] == 0 < gone.weekly_usage[0]


async def test_churn_and_dunning_fire_on_simulated_customers_and_the_invariants_hold(
    tmp_path: Path,
) -> None:
    """A day with 100 customers and the default faults, kill switch included: the real
    policies onboard the new ones, win back the quiet ones with a discount, dun a failed
    payment and revoke (and later restore) access, and every customer invariant holds."""
    settings = simulation_settings(spool_path=tmp_path / "s.jsonl", customers=True)
    config = SimulationConfig(seed=4, days=1, services=3, customers=100, intensity=4)
    report = await run_simulation(settings, config)
    assert report.ok, [v.as_dict() for v in report.violations]
    assert {"onboarding", "churn", "dunning"} <= set(report.policies)
    customers = report.customers
    assert customers is not None
    assert customers["customers"] == 100
    emails = customers["emails_by_template"]
    assert emails["welcome"] >= customers["sign_ups"] - 2
    assert emails["win_back"] >= 1
    assert emails["payment_failed"] >= 1
    assert customers["discounts"] >= emails["win_back"]
    assert customers["revocations"] >= 1
    assert customers["access_restored"] >= 1
    assert customers["at_risk"]["high"] >= 1
    invariants = report.as_dict()["invariants"]
    for name in CUSTOMER_INVARIANTS:
        assert invariants[name]["checks"] > 0, name
    assert customers["stripe_calls"] == invariants["stripe_key"]["checks"]
    assert FaultKind.KILLSWITCH.value in report.faults


class MailEveryone:
    """A broken win-back policy: proposes a marketing email to every customer who has not
    opted out, every tick."""

    name = "broken-winback"

    def evaluate(self, snapshot: Snapshot, history: History, now: datetime) -> Evaluation:
        return Evaluation(
            actions=tuple(
                Action(state.ref, SendEmail("winback"), self.name, "come back")
                for uri, state in sorted(snapshot.resources.items())
                if state.customer is not None
                and state.customer.access
                and not state.customer.opted_out
            )
        )


async def test_a_policy_that_mails_too_often_is_caught_in_a_run(tmp_path: Path) -> None:
    """The real loop applies what the broken policy proposes; email_window catches the second."""
    settings = simulation_settings(spool_path=tmp_path / "s.jsonl", customers=True)
    config = SimulationConfig(seed=2, days=0.25, services=2, customers=10, faults=())
    report = await run_simulation(settings, config, policies=[OnboardingPolicy(), MailEveryone()])
    assert not report.ok
    assert report.violations[0].invariant == "email_window"


class RevokeThePaying:
    """A broken dunning policy: shuts out every customer with a subscription, paid or not."""

    name = "broken-dunning"

    def evaluate(self, snapshot: Snapshot, history: History, now: datetime) -> Evaluation:
        return Evaluation(
            actions=tuple(
                Action(state.ref, RevokeAccess(), self.name, "shut out")
                for uri, state in sorted(snapshot.resources.items())
                if state.customer is not None
                and state.customer.access
                and state.customer.subscription_status == "active"
            )
        )


async def test_a_policy_that_revokes_a_paying_customer_is_caught_in_a_run(tmp_path: Path) -> None:
    """The real loop applies the broken revocation; access_billing catches it."""
    settings = simulation_settings(spool_path=tmp_path / "s.jsonl", customers=True)
    config = SimulationConfig(seed=2, days=0.25, services=2, customers=10, faults=())
    report = await run_simulation(settings, config, policies=[RevokeThePaying()])
    assert not report.ok
    assert {v.invariant for v in report.violations} == {"access_billing"}
