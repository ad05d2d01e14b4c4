"""The customer invariants: what a customer may receive, checked from the simulated providers' logs.

Fed by the checker (`jarvis.simulation.invariants`) with the simulated
provider's witness log (every apply and every kill-switch flip, in order) and
with the simulated mailer's, Stripe's and access's own records
(`jarvis.simulation.customers`), which hold what the world knew when the
message went, the request arrived or access moved. None of it asks the
policies or the guard what they meant to do:

- ``email_window``: no customer receives one message twice within its
  window: the welcome email ever, the payment failed email once per invoice
  (another invoice may fail next month), any other (the win-back) within 30
  days, counting a win-back the row says went before the run;
- ``email_opt_out``: no marketing email (any template not in `TRANSACTIONAL`)
  to a customer opted out when it went;
- ``email_cancelled``: no win-back to a customer whose subscription was
  cancelled when it went;
- ``email_killswitch``: no ``send_email`` reaches the mailer while the kill
  switch is engaged or its store cannot be read;
- ``stripe_key``: every Stripe request (customer, coupon, promotion code)
  carries an idempotency key;
- ``access_billing``: access is revoked only from a customer whose
  subscription Stripe marked ``unpaid`` or ``canceled``, and never granted to one.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from jarvis.model import SendEmail
from jarvis.model.customers import WITHHOLD_ACCESS
from jarvis.simulation.customer_scenario import AccessChange, Sent, StripeCall
from jarvis.simulation.invariant_records import ProviderCall

__all__ = ["TRANSACTIONAL", "CustomerWatch"]

TRANSACTIONAL = frozenset({"welcome", "payment_failed", "access_revoked"})
"""Templates a customer gets whatever their marketing choice: the account's own business."""
WINDOWS: dict[str, timedelta | None] = {"welcome": None, "payment_failed": None}
"""Per template, how long before it may go again (None: never); others `DEFAULT_WINDOW`."""
PER_SUBJECT = frozenset({"payment_failed"})
"""Templates whose window is per what the message is about (the invoice), not per customer."""
DEFAULT_WINDOW = timedelta(days=30)
WIN_BACK = "win_back"
CANCELLED = frozenset({"canceled", "incomplete_expired"})


@dataclass
class CustomerWatch:
    checks: Counter[str] = field(default_factory=Counter)
    problems: list[tuple[str, str, datetime]] = field(default_factory=list)
    """(invariant, message, when) found since the checker last collected them."""
    _last: dict[tuple[str, str, str], datetime] = field(default_factory=dict)
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
        self._window(sent)
        if sent.opted_out and sent.template not in TRANSACTIONAL:
            self._problem("email_opt_out", f"got {sent.template} while opted out", sent)
        if sent.template == WIN_BACK:
            self.checks["email_cancelled"] += 1
            if sent.status in CANCELLED:
                self._problem("email_cancelled", f"got {WIN_BACK} while {sent.status}", sent)

    def _window(self, sent: Sent) -> None:
        subject = sent.about if sent.template in PER_SUBJECT else ""
        key = (sent.customer, sent.template, subject)
        last = self._last.get(key)
        if sent.template == WIN_BACK and sent.previous is not None:
            last = sent.previous if last is None else max(last, sent.previous)
        window = WINDOWS.get(sent.template, DEFAULT_WINDOW)
        if last is not None and (window is None or sent.at - last < window):
            within = f"within {window.days} days" if window else "ever"
            if subject:
                within = f"for {subject}"
            self._problem(
                "email_window",
                f"got {sent.template} twice {within} ({last.isoformat()}, {sent.at.isoformat()})",
                sent,
            )
        self._last[key] = sent.at

    def _problem(self, invariant: str, message: str, sent: Sent) -> None:
        self.problems.append((invariant, f"customer {sent.customer} {message}", sent.at))

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

    def access(self, change: AccessChange) -> None:
        self.checks["access_billing"] += 1
        withheld = change.status in WITHHOLD_ACCESS
        if change.granted == withheld:
            what = "granted" if change.granted else "revoked"
            self.problems.append(
                (
                    "access_billing",
                    f"customer {change.customer}: access {what} with subscription {change.status}",
                    change.at,
                )
            )
