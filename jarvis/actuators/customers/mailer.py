"""The ``email`` provider: sends customers their emails (welcome, payment failed, win-back).

Built by the provider registry from ``[customers.email]``; the SMTP password is
read from the environment. Messages are rendered from Jinja2 templates in
``templates/`` (``NAME.subject.j2``, ``NAME.txt.j2``, ``NAME.html.j2``: plain
text and HTML), each with an unsubscribe link and the ``List-Unsubscribe``
(and one-click ``List-Unsubscribe-Post``, RFC 8058) headers, and sent through
the SMTP sender the notifier uses (`jarvis.mail`). The address is read from
the customer's row when sending and goes nowhere else; a row whose email is
not exactly one address (``a@x, b@y``) is a terminal error, never two sends.

The unsubscribe link carries ``{customer}`` or a signed ``{token}``
(`jarvis.mail.unsubscribe_token`), which the daemon's ``/unsubscribe`` checks.

Once per customer (welcome) or per invoice (payment failed): a row whose
``welcomed_at`` is set, or whose ``dunned_invoice_id`` is the unpaid invoice,
answers "already applied"; after a send, that column is written. The payment
failed email carries the invoice's hosted link, read from the row (the Stripe
webhook wrote it there), never from the action or an event; with no unpaid
invoice left (paid since the proposal) nothing is sent. The win-back email is
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

from collections.abc import Sequence
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.message import EmailMessage
from urllib.parse import quote

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from jarvis.actuators.base import ActuatorError, Scope
from jarvis.actuators.customers.table import Contact, CustomerTable
from jarvis.mail import SendError, SmtpServer, message_id, send, unsubscribe_token
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

WELCOME = "welcome"
PAYMENT_FAILED = "payment_failed"
WIN_BACK = "win_back"
TEMPLATES = frozenset({WELCOME, PAYMENT_FAILED, WIN_BACK})
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


def render(
    template: str,
    customer_id: str,
    contact: Contact,
    head: Letterhead,
    *,
    about: str = "",
    links: dict[str, str] | None = None,
) -> EmailMessage:
    """The message ``template`` for one customer: text and HTML, unsubscribe headers.

    ``about`` (an invoice id, a discount code) tells apart two messages of one
    template to one customer, in the Message-ID; ``links`` are extra URLs the template shows.
    """
    unsubscribe = head.unsubscribe(customer_id)
    context = {
        "name": contact.name,
        "product": head.product,
        "dashboard_url": head.dashboard_url,
        "unsubscribe_url": unsubscribe,
        **(links or {}),
        "discount_code": contact.discount_code,
    }
    message = EmailMessage()
    message["Subject"] = _ENV.get_template(f"{template}.subject.j2").render(context).strip()
    message["From"] = head.sender
    message["To"] = _recipient(contact)
    message["List-Unsubscribe"] = f"<{unsubscribe}>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message["Message-ID"] = message_id(head.sender, template, f"{customer_id}\0{template}\0{about}")
    message.set_content(_ENV.get_template(f"{template}.txt.j2").render(context))
    message.add_alternative(
        _ENV.get_template(f"{template}.html.j2").render(context), subtype="html"
    )
    return message


def _recipient(contact: Contact) -> Address:
    """The one mailbox the row names, or a terminal error: the SMTP envelope is read from To."""
    # The name is the customer's own text: a line break in it is refused by any header.
    name = " ".join((contact.name or "").split())
    try:
        return Address(display_name=name, addr_spec=contact.email)
    except (ValueError, HeaderParseError):
        # "a@x, b@y" would have mailed b, someone the customer named, as well.
        raise ActuatorError(
            "the customer's email is not one address", kind=ErrorKind.TERMINAL, code="Address"
        ) from None


class CustomerMailer:
    """Applies ``send_email`` on ``customer://ID``; observes nothing itself."""

    def __init__(
        self, server: SmtpServer, head: Letterhead, table: CustomerTable, *, clock: Clock
    ) -> None:
        self._server = server
        self._head = head
        self._table = table
        self._clock = clock
        self._unrecorded: set[tuple[str, str, str]] = set()

    @property
    def name(self) -> str:
        return "email"

    @property
    def provider(self) -> str:
        return CUSTOMER_SCHEME

    @property
    def action_kinds(self) -> frozenset[str]:
        return frozenset({SendEmail.kind})

    async def observe(self, _scope: Scope | None = None) -> Sequence[ResourceState]:
        return []

    async def apply(self, action: Action, key: str) -> Outcome:  # noqa: ARG002 - SMTP takes no key; see the module docstring
        params = action.params
        if not isinstance(params, SendEmail) or params.template not in TEMPLATES:
            return Outcome.failure(
                f"email cannot send {action.params!r}", kind=ErrorKind.TERMINAL, code="Template"
            )
        customer_id = action.target.name
        try:
            contact = await self._table.contact(customer_id)
            about, links, skip = _what_to_send(params.template, contact)
            if skip is not None:
                return Outcome.success(skip)
            sent = (customer_id, params.template, about)
            if sent not in self._unrecorded:
                message = render(
                    params.template, customer_id, contact, self._head, about=about, links=links
                )
                await send(message, self._server)
                self._unrecorded.add(sent)
            if params.template == WELCOME:
                await self._table.set_welcomed(customer_id, self._clock.now())
            elif params.template == WIN_BACK:
                await self._table.set_reengaged(customer_id, self._clock.now())
            else:
                await self._table.set_dunned(customer_id, about, self._clock.now())
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


def _what_to_send(template: str, contact: Contact) -> tuple[str, dict[str, str], str | None]:
    """What the message is about and the links it shows, or why nothing is to be sent."""
    if template == WELCOME:
        return "", {}, "already applied: welcome email sent before" if contact.welcomed else None
    if template == WIN_BACK:
        # About its code: a later win-back carries another, and is another message.
        held = _win_back_held(contact)
        return contact.discount_code or "", {}, held
    invoice, url = contact.unpaid_invoice, contact.invoice_url
    if invoice is None:
        return "", {}, "not sent: no unpaid invoice any more"
    if contact.dunned_invoice == invoice:
        return invoice, {}, f"already applied: payment failed email sent for {invoice}"
    if url is None:
        # A draft invoice has no hosted page; a failed payment is never on a draft.
        raise ActuatorError(
            f"invoice {invoice} has no hosted link", kind=ErrorKind.TERMINAL, code="NoInvoiceLink"
        )
    return invoice, {"invoice_url": url}, None


def _win_back_held(contact: Contact) -> str | None:
    """Why the row says not to send the win-back (already sent, or refused); None to send it."""
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
