"""The onboarding policy: a new customer gets a Stripe customer, a welcome email, access.

Called by the reconciler once per tick, like every policy; pure. It reads only
the `Customer` facet of ``customer://ID`` resources and proposes the next
missing step for each, one at a time and in order (billing, then the welcome
email, then dashboard access), since the planner takes one action per resource
per tick anyway. Proposing the next step rather than all three keeps losers out
of the event log, and a failed step holds back the ones after it.

Exactly once comes from level-triggering, not from this policy's memory: each
actuator writes what it did back to the customer's row (the Stripe customer id,
``welcomed_at``, ``dashboard_access``), the sensor reads it the next tick, and
the step is no longer proposed. The guard holds the rest: the allow-list, the
retry budget, a ``[[budgets]]`` entry on ``send_email`` (at most N per hour),
the kill switch and dry run.
"""

from __future__ import annotations

from datetime import datetime

from jarvis.model import (
    ActionParams,
    CreateBillingCustomer,
    Customer,
    GrantAccess,
    History,
    SendEmail,
    Snapshot,
)
from jarvis.policies.base import Evaluation, step_each

WELCOME = "welcome"
"""The welcome email's template name."""


class OnboardingPolicy:
    """Proposes each new customer's next onboarding step."""

    name = "onboarding"

    def evaluate(self, snapshot: Snapshot, history: History, now: datetime) -> Evaluation:  # noqa: ARG002 -- the Policy signature; the facet says what is done
        """At most one action per customer still being onboarded, sorted by resource URI."""
        return step_each(snapshot, self.name, next_step)


def next_step(customer: Customer) -> tuple[ActionParams, str] | None:
    """The first onboarding step not yet done, with the reason; None when onboarded."""
    if not customer.billing:
        return CreateBillingCustomer(), "new customer without a Stripe customer"
    if not customer.welcomed:
        return SendEmail(template=WELCOME), "new customer not yet welcomed"
    if not customer.access and not customer.access_withheld:
        # Also how access returns once Stripe says the subscription is active again.
        return GrantAccess(), "customer without dashboard access"
    return None
