"""The dunning policy: a failed payment gets one email; a subscription Stripe gave up on, no access.

Called by the reconciler once per tick, like every policy; pure. It reads only
the `Customer` facet of ``customer://ID`` resources, which the Stripe webhook
keeps current (`jarvis.actuators.customers.webhooks` writes the row, the
customers sensor reads it):

- an open invoice whose payment failed (``unpaid_invoice``) that no email went
  out for yet (``dunned_invoice`` differs) → ``send_email`` with the
  ``payment_failed`` template, whose hosted invoice link the mailer reads from
  the row. Once per invoice: the mailer writes ``dunned_invoice`` back. It is a
  transactional email, so an opted-out customer still gets it. Jarvis never
  retries the charge: Stripe's Smart Retries do, and ``invoice.paid`` clears it.
- a subscription Stripe marked ``unpaid`` or ``canceled`` while the customer
  still has access → ``revoke_access``, and an ``alert`` note (cause
  ``dunning``, severity ``error``) that reaches a human through the notifier.
  Revoking comes before the email (one action per resource per tick).

Access comes back by onboarding, not here: when Stripe says the subscription
is active again (the customer paid, or subscribed anew), the customer is no
longer ``access_withheld`` and onboarding's ``grant_access`` step applies.
Until access is back, this policy resolves the ``dunning`` alert (a note with
``resolved``), so the notifier closes the incident; for a new subscriber not
yet let in, that resolves nothing.
"""

from __future__ import annotations

from datetime import datetime

from jarvis.model import (
    CUSTOMER_SCHEME,
    Action,
    History,
    ResourceState,
    RevokeAccess,
    SendEmail,
    Snapshot,
)
from jarvis.policies.base import Evaluation, Note, by_uri, customers_of

PAYMENT_FAILED = "payment_failed"
"""The payment failed email's template name."""
REVOKE_PRIORITY = 20
"""Above the emails: shutting out a customer Stripe gave up on is not held back by a letter."""
EMAIL_PRIORITY = 10


class DunningPolicy:
    """Proposes the payment failed email and the revocation of access."""

    name = "dunning"

    def evaluate(self, snapshot: Snapshot, history: History, now: datetime) -> Evaluation:  # noqa: ARG002 -- the Policy signature; the facet says what is done
        """At most one action per customer, sorted by resource URI; alerts raised and resolved."""
        actions: list[tuple[str, Action]] = []
        notes: list[tuple[str, Note]] = []
        for uri, state, customer in customers_of(snapshot):
            if customer.access_withheld and customer.access:
                actions.append((uri, self._revoke(state)))
                notes.append((uri, _escalation(state)))
                continue
            if customer.subscription_status and not (customer.access or customer.access_withheld):
                notes.append((uri, _resolution(state)))
            if customer.unpaid_invoice and customer.unpaid_invoice != customer.dunned_invoice:
                action = Action(
                    target=state.ref,
                    params=SendEmail(template=PAYMENT_FAILED),
                    policy=self.name,
                    reason=f"payment failed on invoice {customer.unpaid_invoice}",
                    priority=EMAIL_PRIORITY,
                )
                actions.append((uri, action))
        return Evaluation(actions=by_uri(actions), notes=by_uri(notes))

    def _revoke(self, state: ResourceState) -> Action:
        status = state.customer.subscription_status if state.customer else None
        return Action(
            target=state.ref,
            params=RevokeAccess(),
            policy=self.name,
            reason=f"subscription {status}: Stripe stopped retrying the payment",
            priority=REVOKE_PRIORITY,
        )


def _escalation(state: ResourceState) -> Note:
    status = state.customer.subscription_status if state.customer else None
    uri = str(state.ref)
    return Note(
        message=f"{uri}: subscription {status}; dashboard access revoked, a person follows up",
        resource=uri,
        alert=True,
        key=f"dunning:{state.ref.name}",
        payload={
            "cause": "dunning",
            "severity": "error",
            "provider": CUSTOMER_SCHEME,
            "subscription_status": status,
            "tried": "revoke_access (Stripe retried the charge itself)",
        },
    )


def _resolution(state: ResourceState) -> Note:
    status = state.customer.subscription_status if state.customer else None
    uri = str(state.ref)
    return Note(
        message=f"{uri}: subscription {status} again; dashboard access follows",
        resource=uri,
        alert=True,
        key=f"dunning-resolved:{state.ref.name}",
        payload={"cause": "dunning", "resolved": True, "provider": CUSTOMER_SCHEME},
    )
