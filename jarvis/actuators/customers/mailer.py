"""The ``email`` provider: sends customers their emails (welcome, and the churn policy's win-back).

Built by the provider registry from ``[customers.email]``; the SMTP password is
read from the environment. Messages are rendered from Jinja2 templates in
``templates/`` (``NAME.subject.j2``, ``NAME.txt.j2``, ``NAME.html.j2``: plain
text and HTML), each with an unsubscribe link and the ``List-Unsubscribe``
(and one-click ``List-Unsubscribe-Post``, RFC 8058) headers, and sent through
the SMTP sender the notifier uses (`jarvis.mail`). The address is read from
the customer's row when sending and goes nowhere else.

The unsubscribe link carries ``{customer}`` or a signed ``{token}``
(`jarvis.mail.unsubscribe_token`), which the daemon's ``/unsubscribe`` checks.

Once per customer: a row whose ``welcomed_at`` is set answers "already
applied"; after a send, ``welcomed_at`` is written. The win-back email is
marketing: it is checked against the row when sending (an opt-out or a
cancellation that arrived since the tick observed it sends nothing), carries
the row's ``discount_code``, and writes ``reengaged_at``; a row whose
``reengaged_at`` is not older than its discount answers "already applied". SMTP cannot take an
idempotency key, so a crash between the server accepting the message and that
write sends it again on the next attempt; the Message-ID is derived from the
customer and the template, so a receiving system that de-duplicates by it
shows one. Within one process a send whose write-back failed is remembered and
only the write is retried.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import formataddr
from urllib.parse import quote

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from jarvis.actuators.base import ActuatorError
from jarvis.actuators.customers.table import Contact, CustomerTable
from jarvis.mail import SendError, SmtpServer, send, unsubscribe_token
from jarvis.model import (
    CUSTOMER_SCHEME,
    Action,
    Clock,
    ErrorKind,
    Outcome,
    ResourceState,
    SendEmail,
)

__all__ = ["CustomerMailer", "Letterhead", "render"]

WIN_BACK = "win_back"
TEMPLATES = frozenset({"welcome", WIN_BACK})
"""The templates this mailer can send; any other is a terminal error."""
MARKETING = frozenset({WIN_BACK})
"""Templates a customer may refuse (``marketing_opt_out``)."""
CANCELLED = frozenset({"canceled", "incomplete_expired"})

_ENV = Environment(
    loader=PackageLoader("jarvis.actuators.customers", "templates"),
    autoescape=select_autoescape(enabled_extensions=("html.j2",), default_for_string=False),
    undefined=StrictUndefined,
    keep_trailing_newline=True,
)


class Letterhead:
    """Who sends, and the links every message carries."""

    def __init__(
        self,
        *,
        sender: str,
        product: str,
        dashboard_url: str,
        unsubscribe_url: str,
        secret: bytes | None = None,
    ) -> None:
        if "{token}" in unsubscribe_url and secret is None:
            raise ValueError("an unsubscribe URL with {token} needs the unsubscribe secret")
        self.sender = sender
        self.product = product
        self.dashboard_url = dashboard_url
        self.unsubscribe_url = unsubscribe_url
        self._secret = secret

    def unsubscribe(self, customer_id: str) -> str:
        url = self.unsubscribe_url.replace("{customer}", quote(customer_id, safe=""))
        if self._secret is not None:
            url = url.replace("{token}", unsubscribe_token(customer_id, self._secret))
        return url


def render(template: str, customer_id: str, contact: Contact, head: Letterhead) -> EmailMessage:
    """The message ``template`` for one customer: text and HTML, unsubscribe headers."""
    unsubscribe = head.unsubscribe(customer_id)
    context = {
        "name": contact.name,
        "product": head.product,
        "dashboard_url": head.dashboard_url,
        "unsubscribe_url": unsubscribe,
        "discount_code": contact.discount_code,
    }
    message = EmailMessage()
    message["Subject"] = _ENV.get_template(f"{template}.subject.j2").render(context).strip()
    message["From"] = head.sender
    message["To"] = formataddr((contact.name or "", contact.email))
    message["List-Unsubscribe"] = f"<{unsubscribe}>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    # One Message-ID per message meant: a later win-back carries another code.
    seed = f"{customer_id}\0{template}" + (
        f"\0{contact.discount_code}" if template in MARKETING else ""
    )
    digest = hashlib.sha256(seed.encode()).hexdigest()[:32]
    domain = head.sender.rpartition("@")[2] or "jarvis.invalid"
    message["Message-ID"] = f"<{template}.{digest}@{domain}>"
    message.set_content(_ENV.get_template(f"{template}.txt.j2").render(context))
    message.add_alternative(
        _ENV.get_template(f"{template}.html.j2").render(context), subtype="html"
    )
    return message


class CustomerMailer:
    """Applies ``send_email`` on ``customer://ID``; observes nothing itself."""

    def __init__(
        self, server: SmtpServer, head: Letterhead, table: CustomerTable, *, clock: Clock
    ) -> None:
        self._server = server
        self._head = head
        self._table = table
        self._clock = clock
        self._unrecorded: set[tuple[str, str]] = set()

    @property
    def name(self) -> str:
        return "email"

    @property
    def provider(self) -> str:
        return CUSTOMER_SCHEME

    @property
    def action_kinds(self) -> frozenset[str]:
        return frozenset({SendEmail.kind})

    async def observe(self) -> Sequence[ResourceState]:
        return []

    async def apply(self, action: Action, key: str) -> Outcome:  # noqa: ARG002 - SMTP takes no key; see the module docstring
        params = action.params
        if not isinstance(params, SendEmail) or params.template not in TEMPLATES:
            return Outcome.failure(
                f"email cannot send {action.params!r}", kind=ErrorKind.TERMINAL, code="Template"
            )
        customer_id = action.target.name
        sent = (customer_id, params.template)
        try:
            contact = await self._table.contact(customer_id)
            held = _held_back(params.template, contact)
            if held is not None:
                return Outcome.success(held)
            if sent not in self._unrecorded:
                await send(render(params.template, customer_id, contact, self._head), self._server)
                self._unrecorded.add(sent)
            if params.template == WIN_BACK:
                await self._table.set_reengaged(customer_id, self._clock.now())
            else:
                await self._table.set_welcomed(customer_id, self._clock.now())
            self._unrecorded.discard(sent)
        except ActuatorError as exc:
            return exc.outcome()
        except SendError as exc:
            kind = ErrorKind.TEMPORARY if exc.temporary else ErrorKind.TERMINAL
            # Not str(exc): a refusal quotes the server, which may quote the address.
            what = "unreachable" if exc.code is None else f"refused {exc.code}"
            return Outcome.failure(f"email {what}", kind=kind, code="SMTP")
        return Outcome.success(f"{params.template} email sent")

    async def aclose(self) -> None:
        await self._table.aclose()


def _held_back(template: str, contact: Contact) -> str | None:
    """Why the row says not to send ``template`` (already sent, or refused); None to send it."""
    if template != WIN_BACK:
        return "already applied: welcome email sent before" if contact.welcomed else None
    if contact.opted_out:
        return "not sent: the customer opted out of marketing email"
    if contact.subscription_status in CANCELLED:
        return "not sent: the customer's subscription is cancelled"
    sent, offered = contact.reengaged_at, contact.discount_at
    if sent is not None and (offered is None or sent >= offered):
        return "already applied: win-back email sent for this discount"
    if contact.discount_code is None:
        raise ActuatorError(
            "no discount to offer: create_discount first",
            kind=ErrorKind.TERMINAL,
            code="NoDiscount",
        )
    return None
