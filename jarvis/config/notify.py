"""The ``[notify]`` section: channels, routes and Alertmanager's timings.

Read by the composition root, which builds the notifier from it. Secrets
(the Slack webhook URL, the PagerDuty routing key, the SMTP password) are
never settings: each channel names the environment variable that holds its
secret (``webhook_url_env`` …), and `secret` reads it here, the one place
besides `jarvis.config` that reads the environment, so a secret can never sit
in a TOML file or be printed by ``jarvis config check``.
"""

from __future__ import annotations

import os
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, SecretStr

from jarvis.config.sections import Section
from jarvis.config.urls import plain_text

__all__ = [
    "EmailChannel",
    "InhibitMatcher",
    "InhibitRuleSettings",
    "NotifySettings",
    "PagerDutyChannel",
    "SlackChannel",
    "secret",
]

SeverityName = Literal["critical", "error", "warning", "info"]


def _severities(*names: SeverityName) -> Any:
    """A default list of severities, built fresh for each section."""
    return Field(default_factory=lambda: list(names), min_length=1)


EnvName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]

HeaderText = Annotated[str, AfterValidator(plain_text)]
"""What becomes part of a mail header or the SMTP dialogue (an address, a host, a name): a
line break in one passed `config check`, and every message then failed when it was built."""


def secret(variable: str) -> SecretStr | None:
    """The value of environment variable ``variable``, or None when unset or empty."""
    value = os.environ.get(variable, "")
    return SecretStr(value) if value else None


class ChannelRoute(Section):
    """Which alerts a channel receives: by severity and by resource glob."""

    severities: list[SeverityName] = _severities("critical", "error")
    resources: Annotated[list[str], Field(min_length=1)] = Field(default_factory=lambda: ["*"])


class SlackChannel(ChannelRoute):
    severities: list[SeverityName] = _severities("critical", "error", "warning", "info")
    webhook_url_env: EnvName = "SLACK_WEBHOOK_URL"
    """The environment variable holding the incoming-webhook URL (it is the secret)."""


class PagerDutyChannel(ChannelRoute):
    url: str = "https://events.pagerduty.com/v2/enqueue"
    routing_key_env: EnvName = "PAGERDUTY_ROUTING_KEY"
    source: Annotated[str, Field(min_length=1, max_length=255)] = "jarvis"
    """``payload.source`` of every event: which system is paging (PagerDuty refuses a
    trigger without one, so every page would fail)."""


class EmailChannel(ChannelRoute):
    severities: list[SeverityName] = _severities("critical", "error", "warning")
    host: Annotated[HeaderText, Field(min_length=1)]
    port: Annotated[int, Field(ge=1, le=65535)] = 587
    sender: Annotated[HeaderText, Field(min_length=3)]
    recipients: Annotated[list[HeaderText], Field(min_length=1)]
    username: HeaderText | None = None
    password_env: EnvName = "SMTP_PASSWORD"  # noqa: S105 - a variable's name, not a password
    starttls: bool = True
    """STARTTLS after connecting (port 587); ``use_tls`` is TLS from the start (port 465)."""
    use_tls: bool = False


class InhibitMatcher(Section):
    """Alerts by cause glob and, when listed, severities (none listed: any severity)."""

    cause: Annotated[str, Field(min_length=1)] = "*"
    severities: list[SeverityName] = Field(default_factory=list)


class InhibitRuleSettings(Section):
    """One ``[[notify.inhibit]]``: a firing ``source`` mutes ``target`` alerts.

    ``equal`` names the labels the two must share, as in Alertmanager: with
    ``["provider"]`` a provider's breaker mutes only that provider's escalations.
    """

    source: InhibitMatcher
    target: InhibitMatcher
    equal: list[Literal["cause", "severity", "provider", "resource"]] = Field(default_factory=list)


class NotifySettings(Section):
    """Off unless a channel is configured; the notifier never delays a tick."""

    poll_interval: Annotated[float, Field(gt=0, le=3600)] = 5.0
    group_wait: Annotated[float, Field(ge=0, le=86_400)] = 30.0
    group_interval: Annotated[float, Field(gt=0, le=86_400)] = 300.0
    repeat_interval: Annotated[float, Field(gt=0, le=30 * 86_400)] = 4 * 3600.0
    max_attempts: Annotated[int, Field(ge=1, le=100)] = 10
    backoff_base: Annotated[float, Field(gt=0, le=3600)] = 2.0
    backoff_max: Annotated[float, Field(gt=0, le=86_400)] = 600.0
    send_timeout: Annotated[float, Field(gt=0, le=300)] = 10.0
    stall_intervals: Annotated[float, Field(ge=2, le=1000)] = 3.0
    """The loop counts as stalled after this many intervals without a finished tick."""
    store_unreachable_after: Annotated[float, Field(gt=0, le=86_400)] = 300.0
    """Seconds the event store may stay unreachable before a human is told.

    Told at ``critical`` when nothing is applied meanwhile: on PostgreSQL, where
    no replica can renew its lease and none acts, and on one node without a
    spool; else (one node with a spool) at ``warning`` (Slack and email, not
    the pager by default). Five minutes outlast a managed database's failover.
    """
    store_unreachable_page_after: Annotated[float, Field(gt=0, le=7 * 86_400)] = 1800.0
    """Seconds after which an outage one node's spool absorbs is raised to ``critical``.

    While the spool takes every tick's events and ledger rows, one node (SQLite)
    goes on healing the fleet and replays the record when the database returns;
    a restart ends most outages long before this. Half an hour is when someone
    should look: the spool grows and the record is not queryable. Not used on
    PostgreSQL, whose outage pages at ``store_unreachable_after``.
    """
    inhibit: list[InhibitRuleSettings] | None = None
    """Inhibition rules; unset keeps the defaults (`jarvis.notify.inhibit.DEFAULT_RULES`),
    an empty list inhibits nothing."""
    slack: SlackChannel | None = None
    pagerduty: PagerDutyChannel | None = None
    email: EmailChannel | None = None

    @property
    def enabled(self) -> bool:
        return any(c is not None for c in (self.slack, self.pagerduty, self.email))
