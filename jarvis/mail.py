"""One SMTP sender for everything Jarvis mails: alerts (`jarvis.notify`) and customers
(`jarvis.actuators.customers`).

A layer of its own below both (it imports nothing of Jarvis), so the notifier
and the customer email actuator share one way of talking SMTP and of telling a
temporary refusal (4xx, a connection that fails) from a permanent one (5xx).
"""

from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage

import aiosmtplib

__all__ = ["SendError", "SmtpServer", "send"]


class SendError(Exception):
    """The message did not get through; ``temporary`` says whether retrying can help."""

    def __init__(self, message: str, *, temporary: bool, code: int | None = None) -> None:
        super().__init__(message)
        self.temporary = temporary
        self.code = code
        """The SMTP reply code; None when the server was not reached."""


@dataclass(frozen=True, slots=True)
class SmtpServer:
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    starttls: bool = True
    use_tls: bool = False
    timeout: float = 10.0


async def send(message: EmailMessage, server: SmtpServer) -> None:
    """Hand ``message`` to ``server``; SendError when it is refused or unreachable."""
    try:
        await aiosmtplib.send(
            message,
            hostname=server.host,
            port=server.port,
            username=server.username,
            password=server.password,
            use_tls=server.use_tls,
            start_tls=server.starttls and not server.use_tls,
            timeout=server.timeout,
        )
    except aiosmtplib.SMTPResponseException as exc:
        raise SendError(
            f"email refused {exc.code}: {exc.message[:200]}",
            temporary=400 <= exc.code < 500,
            code=exc.code,
        ) from None
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        raise SendError(f"email unreachable: {type(exc).__name__}", temporary=True) from None
