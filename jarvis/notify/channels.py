"""The three channels: Slack incoming webhooks, PagerDuty Events v2, email over SMTP.

Built by `build_channels` from the ``[notify]`` settings and the secrets in
the environment; called by the delivery loop with one `Notice` at a time. A
failure is a `DeliveryError` that says whether retrying can help (a 5xx, a
429, a refused connection) or not (a 4xx: the payload or the secret is
wrong; a 3xx: a redirect is never followed). Error messages name the channel
and the status, never the URL or key, because the webhook URL is itself the
Slack secret. An email the server took
for some recipients and refused for others is `PartialDeliveryError`: sent, and
never sent again to those who took it, but its refusals are recorded and told;
the delivery loop retries the recipients refused with a 4xx (greylisting),
whom the notice's ``recipients`` then names.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any, Protocol

import aiohttp

from jarvis.config.notify import NotifySettings, secret
from jarvis.mail import Refusal, SendError, SmtpServer, send
from jarvis.notify.notice import Notice
from jarvis.notify.render import email_message, pagerduty_event, slack_message

__all__ = ["Channel", "DeliveryError", "PartialDeliveryError", "Recorder", "build_channels"]


class DeliveryError(Exception):
    """A notification did not get through; ``temporary`` says whether to try again."""

    def __init__(self, message: str, *, temporary: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.temporary = temporary
        self.retry_after = retry_after
        """Seconds the receiver asked us to wait (its ``Retry-After``), if it said."""


class PartialDeliveryError(DeliveryError):
    """The notice reached some recipients and was refused for the others (``refused``).

    Not temporary: sending it again would reach those who have it a second time.
    Only the ``refused`` whose refusal was temporary (a 4xx) may be sent it again.
    """

    def __init__(self, channel: str, refused: list[Refusal], of: int) -> None:
        listed = "; ".join(str(r) for r in refused)
        super().__init__(
            f"{channel} refused for {len(refused)} of {of} recipients: {listed}", temporary=False
        )
        self.refused = refused


class Channel(Protocol):
    name: str

    async def send(self, notice: Notice) -> None: ...


def _http_error(channel: str, status: int, body: str, retry_after: str | None) -> DeliveryError:
    temporary = status == 429 or status >= 500
    # Slack and PagerDuty send Retry-After in seconds; an HTTP date is not honoured.
    wait = float(retry_after) if retry_after and retry_after.strip().isdigit() else None
    return DeliveryError(
        f"{channel} answered {status}: {body[:200]}", temporary=temporary, retry_after=wait
    )


async def _post(channel: str, url: str, body: object, seconds: float, accept: set[int]) -> None:
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=seconds)) as session,
            # A redirect is not followed: aiohttp would follow a 302 as a GET without the
            # body, and the page it lands on answering 200 would pass for a delivery.
            session.post(url, json=body, allow_redirects=False) as response,
        ):
            # Only quoted in the error: a proxy's error page in another charset must not raise.
            text = await response.text(errors="replace")
            if 300 <= response.status < 400:
                # Not where it points either: the Location may carry the secret the URL did.
                text = "redirected, not followed"
            if response.status not in accept:
                retry_after = response.headers.get("Retry-After")
                raise _http_error(channel, response.status, text, retry_after)
    except (aiohttp.ClientError, TimeoutError) as exc:
        # Not str(exc): some aiohttp errors quote the URL, and the URL is the secret.
        raise DeliveryError(
            f"{channel} unreachable: {type(exc).__name__}", temporary=True
        ) from None


@dataclass
class SlackWebhook:
    url: str
    timeout: float
    name: str = "slack"

    async def send(self, notice: Notice) -> None:
        await self.post(slack_message(notice))

    async def post(self, body: dict[str, Any]) -> None:
        """Post any message to the webhook (the daily report's summary uses it too)."""
        await _post(self.name, self.url, body, self.timeout, {200})


@dataclass
class PagerDuty:
    url: str
    routing_key: str
    source: str
    timeout: float
    name: str = "pagerduty"

    async def send(self, notice: Notice) -> None:
        body = pagerduty_event(notice, self.routing_key, self.source)
        await _post(self.name, self.url, body, self.timeout, {200, 202})


@dataclass
class Email:
    host: str
    port: int
    sender: str
    recipients: list[str]
    username: str | None
    password: str | None
    starttls: bool
    use_tls: bool
    timeout: float
    name: str = "email"

    async def send(self, notice: Notice) -> None:
        # A retry goes to the recipients still owed it, if they are still configured,
        # as the same message: its To and Message-ID are those of the first attempt.
        owed = [r for r in self.recipients if not notice.recipients or r in notice.recipients]
        if not owed:
            return
        message = email_message(notice, self.sender, self.recipients)
        refused = await self.mail(message, owed if notice.recipients else None)
        if refused:
            raise PartialDeliveryError(self.name, refused, len(owed))

    async def mail(self, message: EmailMessage, envelope: list[str] | None = None) -> list[Refusal]:
        """Send ``message`` to the recipients (or to ``envelope``); sets From and To when unset.

        Returns the recipients the server refused while it took the others.
        """
        if "From" not in message:
            message["From"] = self.sender
        if "To" not in message:
            message["To"] = ", ".join(self.recipients)
        server = SmtpServer(
            host=self.host,
            port=self.port,
            username=self.username,
            password=self.password,
            starttls=self.starttls,
            use_tls=self.use_tls,
            timeout=self.timeout,
        )
        try:
            return await send(message, server, envelope)
        except SendError as exc:
            raise DeliveryError(str(exc), temporary=exc.temporary) from None


@dataclass
class Recorder:
    """A channel that keeps what it is sent: the simulation's pager, which reaches nobody."""

    name: str
    notices: list[Notice]

    async def send(self, notice: Notice) -> None:
        self.notices.append(notice)


class MissingSecretError(Exception):
    """A configured channel's secret is not in the environment, or cannot be one."""


ROUTING_KEY_LENGTH = 32
"""PagerDuty's Events API v2 integration keys are 32 characters; it refuses others (400)."""


def build_channels(settings: NotifySettings) -> dict[str, Channel]:
    """Every configured channel by name; raises MissingSecretError naming the variable."""
    channels: dict[str, Channel] = {}
    timeout = settings.send_timeout
    if settings.slack is not None:
        url = _required(settings.slack.webhook_url_env, "notify.slack")
        channels["slack"] = SlackWebhook(url=url, timeout=timeout)
    if settings.pagerduty is not None:
        pd = settings.pagerduty
        # A secret file's trailing newline is not part of the key.
        key = _required(pd.routing_key_env, "notify.pagerduty").strip()
        if len(key) != ROUTING_KEY_LENGTH:
            # Never the value: it is the secret (and often something else pasted by mistake).
            raise MissingSecretError(
                f"notify.pagerduty: environment variable {pd.routing_key_env} holds"
                f" {len(key)} characters, not a {ROUTING_KEY_LENGTH}-character"
                " Events API v2 routing key (integration key); PagerDuty would refuse every page"
            )
        channels["pagerduty"] = PagerDuty(
            url=pd.url, routing_key=key, source=pd.source, timeout=timeout
        )
    if settings.email is not None:
        mail = settings.email
        password = secret(mail.password_env)
        channels["email"] = Email(
            host=mail.host,
            port=mail.port,
            sender=mail.sender,
            recipients=list(mail.recipients),
            username=mail.username,
            password=None if password is None else password.get_secret_value(),
            starttls=mail.starttls,
            use_tls=mail.use_tls,
            timeout=timeout,
        )
    return channels


def _required(variable: str, section: str) -> str:
    value = secret(variable)
    if value is None:
        raise MissingSecretError(f"{section}: environment variable {variable} is not set")
    return value.get_secret_value()
