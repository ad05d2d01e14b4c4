"""One SMTP sender for everything Jarvis mails: alerts (`jarvis.notify`) and customers
(`jarvis.actuators.customers`).

A layer of its own below both (it imports nothing of Jarvis), so the notifier
and the customer email actuator share one way of talking SMTP and of telling a
temporary refusal (4xx, a connection that fails) from a permanent one (5xx,
or a server lacking what the settings require: STARTTLS, AUTH).

Every message leaves through `send`, which gives one that lacks them a
``Date`` and a ``Message-ID`` (RFC 5322 asks for both; spam filters penalise
mail without them and clients cannot thread it). A Message-ID's domain is the
sender's (`message_id`), never this machine's hostname, which
`email.utils.make_msgid` would use and which leaks internal names or, in a
container, means nothing. A message that is sent again after a failure keeps
its Message-ID when the caller derives it from what the message is about
(`message_id` with an identity: an alert's outbox row, a customer and a
template), so a receiver that de-duplicates by it shows one.

It also holds the unsubscribe token, which two sides share: the customer
mailer signs it into every marketing email's unsubscribe link and the daemon's
``/unsubscribe`` endpoint (`jarvis.telemetry.unsubscribe`) checks it. The
token is the customer id and an HMAC-SHA256 of it under a secret from the
environment, so nobody can unsubscribe a customer whose link they were not
sent, and the endpoint needs no table of issued tokens. It does not expire:
an unsubscribe link must keep working (RFC 8058).

aiosmtplib is imported by `send` alone: the daemon serves ``/unsubscribe``
whether or not anything mails, and a start should not load an SMTP client to
check a token (issue 16).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass
from email.utils import formatdate, make_msgid, parseaddr
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from email.message import EmailMessage

    import aiosmtplib

__all__ = [
    "Refusal",
    "SendError",
    "SmtpServer",
    "message_id",
    "send",
    "unsubscribe_token",
    "verify_unsubscribe_token",
]

_DOMAIN = re.compile(
    r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+"
)
"""A domain fit for a Message-ID: ASCII labels, at least two of them."""
_NO_DOMAIN = "jarvis.invalid"

_PURPOSE = b"jarvis-unsubscribe\0"
"""Domain separation: a MAC for this purpose is no MAC for any other use of the secret."""


class SendError(Exception):
    """The message did not get through; ``temporary`` says whether retrying can help."""

    def __init__(self, message: str, *, temporary: bool, code: int | None = None) -> None:
        super().__init__(message)
        self.temporary = temporary
        self.code = code
        """The SMTP reply code; None when the server was not reached."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """One recipient the server refused at RCPT TO while it took the message for others."""

    recipient: str
    code: int
    message: str

    @property
    def temporary(self) -> bool:
        """A 4xx (greylisting, a full mailbox): the same recipient may take it later."""
        return _temporary(self.code)

    def __str__(self) -> str:
        return f"{self.recipient} {self.code} {self.message[:200]}"


@dataclass(frozen=True, slots=True)
class SmtpServer:
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    starttls: bool = True
    use_tls: bool = False
    timeout: float = 10.0


async def send(
    message: EmailMessage, server: SmtpServer, recipients: Sequence[str] | None = None
) -> list[Refusal]:
    """Hand ``message`` to ``server``; SendError when it is refused or unreachable.

    A server that takes the message for some recipients and refuses others at
    RCPT TO has sent it: the refused ones are returned, not raised, because
    sending again would mail the accepted recipients twice. ``recipients`` is
    the envelope when given (a retry for those refused), else its To and Cc.

    Gives ``message`` a ``Date`` and a ``Message-ID`` (on the domain of its
    ``From``) when it has none, so a retry of the same message keeps them.
    """
    import aiosmtplib  # noqa: PLC0415 -- see the module docstring

    if "Date" not in message:
        message["Date"] = formatdate(usegmt=True)
    if "Message-ID" not in message:
        message["Message-ID"] = make_msgid(domain=_domain(str(message.get("From", ""))))
    try:
        refused, _ = await aiosmtplib.send(
            message,
            recipients=None if recipients is None else list(recipients),
            hostname=server.host,
            port=server.port,
            username=server.username,
            password=server.password,
            use_tls=server.use_tls,
            start_tls=server.starttls and not server.use_tls,
            timeout=server.timeout,
        )
    except aiosmtplib.SMTPRecipientsRefused as exc:
        # Every recipient refused at RCPT TO (a mailbox that does not exist):
        # the server answered, so it is a refusal, temporary only for a 4xx.
        refusal = min(exc.recipients, key=lambda r: r.code, default=None)
        if refusal is None:
            raise SendError("email refused: no recipient", temporary=False) from None
        raise _refused(refusal) from None
    except aiosmtplib.SMTPResponseException as exc:
        raise _refused(exc) from None
    except aiosmtplib.SMTPException as exc:
        if type(exc) is aiosmtplib.SMTPException or isinstance(exc, aiosmtplib.SMTPNotSupported):
            # The server answered but lacks what the settings require (STARTTLS, AUTH,
            # SMTPUTF8): no retry can change that, and aiosmtplib's own text says which.
            raise SendError(f"email refused: {exc}", temporary=False) from None
        # Disconnected, refused or timed out: the server may answer later.
        raise SendError(f"email unreachable: {type(exc).__name__}", temporary=True) from None
    except (OSError, TimeoutError) as exc:
        raise SendError(f"email unreachable: {type(exc).__name__}", temporary=True) from None
    return [Refusal(to, reply.code, reply.message) for to, reply in refused.items()]


def message_id(sender: str, kind: str, identity: str) -> str:
    """``<kind.digest@sender's domain>``: the same for every send of what ``identity`` names."""
    digest = hashlib.sha256(identity.encode()).hexdigest()[:32]
    return f"<{kind}.{digest}@{_domain(sender)}>"


def _domain(sender: str) -> str:
    """The domain of the address in ``sender`` (``Name <a@b.example>`` too), or a placeholder."""
    _, at, domain = parseaddr(sender)[1].rpartition("@")
    return domain if at and _DOMAIN.fullmatch(domain) else _NO_DOMAIN


def _refused(exc: aiosmtplib.SMTPResponseException) -> SendError:
    return SendError(
        f"email refused {exc.code}: {exc.message[:200]}",
        temporary=_temporary(exc.code),
        code=exc.code,
    )


def _temporary(code: int) -> bool:
    """An SMTP reply the same request may get past later (4xx, RFC 5321 section 4.2.1)."""
    return 400 <= code < 500


def unsubscribe_token(customer_id: str, secret: bytes) -> str:
    """``base64url(id).hex-mac``: what an unsubscribe link carries for one customer."""
    encoded = base64.urlsafe_b64encode(customer_id.encode()).decode().rstrip("=")
    return f"{encoded}.{_mac(customer_id, secret)}"


def verify_unsubscribe_token(token: str, secret: bytes) -> str | None:
    """The customer id a genuine token names; None for anything else."""
    encoded, dot, mac = token.partition(".")
    # A genuine token is ASCII; hmac.compare_digest raises TypeError on any other str.
    if not dot or not encoded or len(token) > 512 or not token.isascii():
        return None
    try:
        customer_id = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    if not hmac.compare_digest(mac, _mac(customer_id, secret)):
        return None
    return customer_id


def _mac(customer_id: str, secret: bytes) -> str:
    return hmac.new(secret, _PURPOSE + customer_id.encode(), hashlib.sha256).hexdigest()[:32]
