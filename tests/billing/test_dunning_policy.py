"""The dunning policy: one email per failed invoice, access revoked (and a human told) when
Stripe gives up; onboarding gives access back when the subscription is active again."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from jarvis.model import (
    Customer,
    GrantAccess,
    Health,
    History,
    ResourceRef,
    ResourceState,
    RevokeAccess,
    SendEmail,
    Snapshot,
)
from jarvis.policies.dunning import DunningPolicy
from jarvis.policies.onboarding import OnboardingPolicy

NOW = datetime(2026, 11, 1, tzinfo=UTC)
STATUSES = ["active", "trialing", "past_due", "incomplete", "unpaid", "canceled", "paused", None]


def _state(
    name: str,
    *,
    status: str | None = "active",
    access: bool = True,
    unpaid: str | None = None,
    dunned: str | None = None,
) -> ResourceState:
    customer = Customer(
        plan="pro",
        signed_up_at=NOW,
        billing=True,
        welcomed=True,
        access=access,
        opted_out=True,
        subscription_status=status,
        unpaid_invoice=unpaid,
        dunned_invoice=dunned,
    )
    return ResourceState(
        ref=ResourceRef("customer", name, kind="customer"),
        health=Health.HEALTHY,
        observed_at=NOW,
        customer=customer,
    )


def _snapshot(*states: ResourceState) -> Snapshot:
    return Snapshot(taken_at=NOW, resources={str(s.ref): s for s in states})


def test_a_failed_invoice_gets_one_payment_failed_email_even_when_opted_out() -> None:
    """Transactional: opted out of marketing, still told; an invoice already dunned, not again."""
    evaluation = DunningPolicy().evaluate(
        _snapshot(
            _state("a", status="past_due", unpaid="in_1"),
            _state("b", status="past_due", unpaid="in_1", dunned="in_1"),
            _state("c", status="past_due", unpaid="in_2", dunned="in_1"),
            _state("d"),
        ),
        History(),
        NOW,
    )
    assert [(str(a.target), a.params) for a in evaluation.actions] == [
        ("customer://a", SendEmail(template="payment_failed")),
        ("customer://c", SendEmail(template="payment_failed")),
    ]
    assert evaluation.notes == ()


def test_unpaid_or_canceled_revokes_access_first_and_escalates() -> None:
    """Revocation wins over the email on the same customer, and an error alert names it."""
    evaluation = DunningPolicy().evaluate(
        _snapshot(_state("a", status="unpaid", unpaid="in_1"), _state("b", status="canceled")),
        History(),
        NOW,
    )
    assert [(str(a.target), a.params) for a in evaluation.actions] == [
        ("customer://a", RevokeAccess()),
        ("customer://b", RevokeAccess()),
    ]
    assert [
        (n.resource, n.alert, n.payload["cause"], n.payload["severity"]) for n in evaluation.notes
    ] == [
        ("customer://a", True, "dunning", "error"),
        ("customer://b", True, "dunning", "error"),
    ]


def test_once_revoked_nothing_more_is_proposed_and_onboarding_does_not_grant() -> None:
    """A canceled customer without access: no revocation, no alert, and no grant back."""
    snapshot = _snapshot(_state("a", status="canceled", access=False))
    assert DunningPolicy().evaluate(snapshot, History(), NOW).actions == ()
    assert DunningPolicy().evaluate(snapshot, History(), NOW).notes == ()
    assert OnboardingPolicy().evaluate(snapshot, History(), NOW).actions == ()


def test_access_comes_back_through_onboarding_when_the_subscription_is_active_again() -> None:
    """Paid (or renewed): onboarding grants access, and dunning resolves its alert."""
    snapshot = _snapshot(_state("a", status="active", access=False))
    actions = OnboardingPolicy().evaluate(snapshot, History(), NOW).actions
    assert [a.params for a in actions] == [GrantAccess()]
    notes = DunningPolicy().evaluate(snapshot, History(), NOW).notes
    assert [(n.resource, n.alert, n.payload) for n in notes] == [
        ("customer://a", True, {"cause": "dunning", "resolved": True, "provider": "customer"})
    ]


@given(
    statuses=st.lists(st.tuples(st.sampled_from(STATUSES), st.booleans()), max_size=6),
)
def test_access_is_revoked_exactly_when_stripe_gave_up_and_access_is_still_open(
    statuses: list[tuple[str | None, bool]],
) -> None:
    """Whatever the mix: revoke ⇔ (unpaid or canceled) and access; past_due keeps access."""
    states = [_state(f"c{i}", status=s, access=a) for i, (s, a) in enumerate(statuses)]
    evaluation = DunningPolicy().evaluate(_snapshot(*states), History(), NOW)
    revoked = {str(a.target) for a in evaluation.actions if a.params == RevokeAccess()}
    expected = {
        f"customer://c{i}" for i, (s, a) in enumerate(statuses) if a and s in {"unpaid", "canceled"}
    }
    assert revoked == expected
    raised = {n.resource for n in evaluation.notes if not n.payload.get("resolved")}
    assert raised == expected
    assert len({str(a.target) for a in evaluation.actions}) == len(evaluation.actions)
