"""The customer invariants: what a customer may receive, checked from the simulated providers' logs.

Fed by the checker (`jarvis.simulation.invariants`) with the simulated
provider's witness log (every apply and every kill-switch flip, in order) and
with the simulated mailer's and Stripe's own records
(`jarvis.simulation.customers`), which hold what the world knew when the
message went or the request arrived. None of it asks the policies or the
guard what they meant to do:

- ``email_window``: no customer receives one template twice within its
  window: the welcome email ever, any other within 30 days;
- ``email_opt_out``: no marketing email (any template not in `TRANSACTIONAL`)
  to a customer opted out when it went;
- ``email_killswitch``: no ``send_email`` reaches the mailer while the kill
  switch is engaged or its store cannot be read;
- ``stripe_key``: every Stripe request carries an idempotency key.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from jarvis.model import SendEmail
from jarvis.simulation.customers import Sent, StripeCall
from jarvis.simulation.invariant_records import ProviderCall

__all__ = ["TRANSACTIONAL", "CustomerWatch"]

TRANSACTIONAL = frozenset({"welcome", "payment_failed", "access_revoked"})
"""Templates a customer gets whatever their marketing choice: the account's own business."""
WINDOWS: dict[str, timedelta | None] = {"welcome": None}
"""Per template, how long before it may go again (None: never); others `DEFAULT_WINDOW`."""
DEFAULT_WINDOW = timedelta(days=30)


@dataclass
class CustomerWatch:
    checks: Counter[str] = field(default_factory=Counter)
    problems: list[tuple[str, str, datetime]] = field(default_factory=list)
    """(invariant, message, when) found since the checker last collected them."""
    _last: dict[tuple[str, str], datetime] = field(default_factory=dict)
    _engaged: bool = False
    _unreadable: bool = False

    def call(self, call: ProviderCall) -> None:
        """One witness entry: a flip, the switch's store going or coming, or an apply."""
        if call.what in {"engage", "release"}:
            self._engaged = call.what == "engage"
        elif call.what in {"switch_down", "switch_up"}:
            self._unreadable = call.what == "switch_down"
        elif call.action is not None and call.action.kind == SendEmail.kind:
            self.checks["email_killswitch"] += 1
            if self._engaged or self._unreadable:
                why = "engaged" if self._engaged else "unreadable"
                self.problems.append(
                    (
                        "email_killswitch",
                        f"an email to {call.action.target} reached the mailer while the "
                        f"kill switch was {why}",
                        call.at,
                    )
                )

    def sent(self, sent: Sent) -> None:
        self.checks["email_window"] += 1
        self.checks["email_opt_out"] += 1
        key = (sent.customer, sent.template)
        last = self._last.get(key)
        window = WINDOWS.get(sent.template, DEFAULT_WINDOW)
        if last is not None and (window is None or sent.at - last < window):
            within = "ever" if window is None else f"within {window.days} days"
            self.problems.append(
                (
                    "email_window",
                    f"customer {sent.customer} got {sent.template} twice {within} "
                    f"({last.isoformat()}, {sent.at.isoformat()})",
                    sent.at,
                )
            )
        self._last[key] = sent.at
        if sent.opted_out and sent.template not in TRANSACTIONAL:
            self.problems.append(
                (
                    "email_opt_out",
                    f"customer {sent.customer} got {sent.template} while opted out",
                    sent.at,
                )
            )

    def stripe(self, call: StripeCall) -> None:
        self.checks["stripe_key"] += 1
        if not call.idempotency_key:
            self.problems.append(
                (
                    "stripe_key",
                    f"Stripe {call.method} for customer {call.customer} without an idempotency key",
                    call.at,
                )
            )
