"""A real SMTP server (aiosmtpd) on 127.0.0.1 and a free port, for every test that sends mail.

It keeps what it received, in order, and can answer as real servers do when
they refuse: ``unknown`` addresses are refused at RCPT TO with 550 5.1.1 (a
mailbox it lacks) while the other recipients of the same message are taken;
``greylisted`` addresses are refused at RCPT TO with 450 4.2.0 the given
number of times, then taken, as a greylisting server refuses a first attempt;
``refuse_next`` codes refuse the next messages at DATA; ``lose_reply_next =
n`` keeps the next n messages but answers 451 to each, as when the server's
answer is lost after it took the message, so the sender tries again.
"""

from __future__ import annotations

import email
from email.message import EmailMessage
from email.policy import default as default_policy

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.loopback import free_port


class Inbox:
    """An SMTP server on 127.0.0.1 and a free port; what it received, in order."""

    def __init__(self) -> None:
        self.port = free_port()
        self.messages: list[EmailMessage] = []
        self.refuse_next: list[int] = []
        self.lose_reply_next = 0
        self.unknown: set[str] = set()
        """Addresses refused at RCPT TO with 550 5.1.1, as a server refuses a mailbox it lacks."""
        self.greylisted: dict[str, int] = {}
        """Address to how many more times RCPT TO refuses it with 450 4.2.0 (greylisting)."""
        self.recipients: list[str] = []
        """Every address accepted at RCPT TO, in order: the envelope, not the To header."""
        self.envelopes: list[list[str]] = []
        """The addresses each kept message was accepted for, in order."""
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address in self.unknown:
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        if self.greylisted.get(address, 0) > 0:
            self.greylisted[address] -= 1
            return f"450 4.2.0 <{address}>: Recipient address rejected: Greylisted, try later"
        envelope.rcpt_tos.append(address)
        self.recipients.append(address)
        return "250 OK"

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        if self.refuse_next:
            return f"{self.refuse_next.pop(0)} refused for bob@example.com"
        message = email.message_from_bytes(envelope.original_content or b"", policy=default_policy)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        self.envelopes.append(list(envelope.rcpt_tos))
        if self.lose_reply_next > 0:
            self.lose_reply_next -= 1
            return "451 4.3.0 try again later"
        return "250 OK"

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()
