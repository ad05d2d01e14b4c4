"""Simulated customers: onboarded by the real policies through the real guard, and their invariants.

The invariants are shown to fail two ways: on hand-built witness records (each
broken guarantee alone), and in a run whose policy is broken on purpose (a
"win-back" that mails every customer every tick), which the real loop applies
and the checker must catch.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from jarvis.model import (
    CUSTOMER_SCHEME,
    Action,
    History,
    ResourceRef,
    Restart,
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
from jarvis.simulation.customers import Sent, SimulatedCustomers, StripeCall
from jarvis.simulation.faults import FaultKind

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
) -> list[str]:
    checker = InvariantChecker(RULES)
    checker.feed_calls(calls)
    checker.feed_customers(sends, stripe)
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


def test_a_stripe_call_without_an_idempotency_key_is_caught() -> None:
    """Every request Stripe receives carries a key."""
    assert violations(stripe=[StripeCall(T0, "c1", "customers.create", None)]) == ["stripe_key"]
    assert violations(stripe=[StripeCall(T0, "c1", "customers.create", "k")]) == []


def test_the_simulated_stripe_replays_a_key_like_stripe() -> None:
    """The same key twice returns the customer made the first time."""
    world = SimulatedCustomers.scenario(seed=1, count=2, start=T0, days=1, prices={})
    world.advance(T0 + timedelta(days=1))
    first = world.create_billing_customer("c00000", "key-1", T0)
    assert world.create_billing_customer("c00000", "key-1", T0) == first
    assert world.create_billing_customer("c00001", "key-2", T0) != first


async def test_simulated_customers_are_onboarded_by_the_real_policy_and_the_invariants_hold(
    tmp_path: Path,
) -> None:
    """A day with 40 customers and the default faults, kill switch included: each customer who
    signed up before the last hour has a Stripe customer, one welcome email and access."""
    settings = simulation_settings(spool_path=tmp_path / "s.jsonl", customers=True)
    config = SimulationConfig(seed=4, days=1, services=3, customers=40, intensity=4)
    report = await run_simulation(settings, config)
    assert report.ok, [v.as_dict() for v in report.violations]
    assert "onboarding" in report.policies
    customers = report.customers
    assert customers is not None
    assert customers["sign_ups"] == 40
    assert customers["emails_by_template"]["welcome"] >= 35
    invariants = report.as_dict()["invariants"]
    for name in ("email_window", "email_opt_out", "email_killswitch", "stripe_key"):
        assert invariants[name]["checks"] > 0, name
    assert customers["stripe_calls"] == invariants["stripe_key"]["checks"]
    assert FaultKind.KILLSWITCH.value in report.faults


class MailEveryone:
    """A broken win-back policy: proposes a marketing email to every customer, every tick."""

    name = "broken-winback"

    def evaluate(self, snapshot: Snapshot, history: History, now: datetime) -> Evaluation:
        return Evaluation(
            actions=tuple(
                Action(state.ref, SendEmail("winback"), self.name, "come back")
                for uri, state in sorted(snapshot.resources.items())
                if state.customer is not None and state.customer.access
            )
        )


async def test_a_policy_that_mails_too_often_is_caught_in_a_run(tmp_path: Path) -> None:
    """The real loop applies what the broken policy proposes; email_window catches the second."""
    settings = simulation_settings(spool_path=tmp_path / "s.jsonl", customers=True)
    config = SimulationConfig(seed=2, days=0.25, services=2, customers=10, faults=())
    report = await run_simulation(settings, config, policies=[OnboardingPolicy(), MailEveryone()])
    assert not report.ok
    assert report.violations[0].invariant == "email_window"
