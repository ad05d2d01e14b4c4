"""The onboarding policy proposes each customer's next missing step, and nothing once done."""

from __future__ import annotations

from datetime import UTC, datetime

from jarvis.model import (
    CreateBillingCustomer,
    Customer,
    GrantAccess,
    Health,
    History,
    ResourceRef,
    ResourceState,
    SendEmail,
    Snapshot,
)
from jarvis.policies.onboarding import OnboardingPolicy

NOW = datetime(2026, 11, 1, tzinfo=UTC)


def _state(name: str, *, billing: bool, welcomed: bool, access: bool) -> ResourceState:
    customer = Customer(
        plan="free",
        signed_up_at=NOW,
        billing=billing,
        welcomed=welcomed,
        access=access,
        opted_out=False,
    )
    return ResourceState(
        ref=ResourceRef("customer", name, kind="customer"),
        health=Health.HEALTHY,
        observed_at=NOW,
        detail=customer.stage(),
        customer=customer,
    )


def test_each_customer_gets_its_next_step_in_order() -> None:
    """Billing first, then the welcome email, then access; an onboarded customer nothing."""
    states = [
        _state("a", billing=False, welcomed=False, access=False),
        _state("b", billing=True, welcomed=False, access=False),
        _state("c", billing=True, welcomed=True, access=False),
        _state("d", billing=True, welcomed=True, access=True),
    ]
    snapshot = Snapshot(taken_at=NOW, resources={str(s.ref): s for s in states})
    actions = OnboardingPolicy().evaluate(snapshot, History(), NOW).actions
    assert [(str(a.target), a.params) for a in actions] == [
        ("customer://a", CreateBillingCustomer()),
        ("customer://b", SendEmail(template="welcome")),
        ("customer://c", GrantAccess()),
    ]


def test_resources_without_the_customer_facet_are_left_alone() -> None:
    """A service is not a customer, whatever its name."""
    service = ResourceState(ref=ResourceRef("sim", "api"), health=Health.HEALTHY, observed_at=NOW)
    snapshot = Snapshot(taken_at=NOW, resources={"sim://api": service})
    assert OnboardingPolicy().evaluate(snapshot, History(), NOW).actions == ()
