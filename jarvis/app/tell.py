"""What Jarvis tells people, built from settings: the notification channels and the
notifier, the daily report's sender, and the revenue keeper.

Each builder imports what it builds when it is called, as in `jarvis.app.decide`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from jarvis.app.decide import report_churn_rules

if TYPE_CHECKING:
    from jarvis.config import Settings
    from jarvis.loop.revenue import RevenueKeeper
    from jarvis.model import Clock
    from jarvis.notify import Notifier
    from jarvis.notify.channels import Channel
    from jarvis.report.deliver import ReportSender
    from jarvis.store import EventStore
    from jarvis.telemetry.metrics import Metrics

__all__ = ["build_notifier", "build_report_sender", "build_revenue_keeper", "notify_channels"]


def notify_channels(settings: Settings) -> dict[str, Channel]:
    """The configured notification channels; ConfigError names a secret missing from the env."""
    from jarvis.config import ConfigError
    from jarvis.notify.channels import MissingSecretError, build_channels

    try:
        return build_channels(settings.notify)
    except MissingSecretError as exc:
        raise ConfigError(str(exc)) from None


def build_notifier(
    settings: Settings,
    store: EventStore,
    clock: Clock,
    metrics: Metrics,
    *,
    seed: int | None = None,
    pager: Channel | None = None,
) -> Notifier | None:
    """The notifier for the configured channels, or None when none is configured.

    Raises ConfigError when a channel's secret is missing from the environment.
    With ``pager`` (the simulation's recorder), that one channel receives what
    PagerDuty would, through an outbox in memory, whatever the settings say.
    """
    if pager is None and not settings.notify.enabled:
        return None  # before the imports: jarvis.notify costs a start that uses none of it
    from jarvis.notify import Notifier, Severity
    from jarvis.notify.delivery import Delivery
    from jarvis.notify.groups import Grouper, Route, Timing
    from jarvis.notify.inhibit import Inhibitor, rules_from
    from jarvis.notify.service import jitter_rng
    from jarvis.store.memory_outbox import MemoryOutbox
    from jarvis.store.outbox import NotificationOutbox, Outbox

    notify = settings.notify
    outbox: NotificationOutbox
    if pager is not None:
        channels: dict[str, Channel] = {pager.name: pager}
        routes = [Route(pager.name, frozenset({Severity.CRITICAL, Severity.ERROR}))]
        outbox = MemoryOutbox()
    else:
        channels = notify_channels(settings)
        routes = [
            Route(
                channel=name,
                severities=frozenset(Severity(s) for s in section.severities),
                resources=tuple(section.resources),
            )
            for name, section in (
                ("slack", notify.slack),
                ("pagerduty", notify.pagerduty),
                ("email", notify.email),
            )
            if section is not None
        ]
        outbox = Outbox(store.engine)
    timing = Timing(
        group_wait=timedelta(seconds=notify.group_wait),
        group_interval=timedelta(seconds=notify.group_interval),
        repeat_interval=timedelta(seconds=notify.repeat_interval),
    )
    return Notifier(
        store=store,
        outbox=outbox,
        channels=channels,
        grouper=Grouper(routes, timing, Inhibitor(rules_from(notify.inhibit))),
        clock=clock,
        metrics=metrics,
        poll_interval=notify.poll_interval,
        stall_after=timedelta(seconds=notify.stall_intervals * settings.loop.interval),
        unreachable_after=timedelta(seconds=notify.store_unreachable_after),
        unreachable_page_after=timedelta(seconds=notify.store_unreachable_page_after),
        delivery=Delivery(
            clock=clock,
            metrics=metrics,
            max_attempts=notify.max_attempts,
            backoff_base=notify.backoff_base,
            backoff_max=notify.backoff_max,
            send_timeout=notify.send_timeout,
            rng=jitter_rng(seed),
        ),
    )


def build_report_sender(settings: Settings, store: EventStore, clock: Clock) -> ReportSender | None:
    """The daily report's sender when ``[report] deliver_at`` is set, else None.

    Its channels are the ``[notify]`` ones named in ``[report] channels``
    (config checks they are configured); ConfigError names a missing secret.
    """
    from jarvis.notify.channels import Email, SlackWebhook
    from jarvis.report.deliver import ReportSender

    report = settings.report
    if report.deliver_at is None:
        return None
    channels = notify_channels(settings)
    mailer = channels.get("email") if "email" in report.channels else None
    slack = channels.get("slack") if "slack" in report.channels else None
    return ReportSender(
        store=store,
        clock=clock,
        at=report.deliver_at,
        zone=report.zone,
        budget_usd=settings.cost.monthly_budget_usd,
        include_cloud=settings.cost.include_cloud_spend,
        churn=report_churn_rules(settings),
        mailer=mailer if isinstance(mailer, Email) else None,
        slack=slack if isinstance(slack, SlackWebhook) else None,
    )


def build_revenue_keeper(
    settings: Settings, store: EventStore, clock: Clock, metrics: Metrics
) -> RevenueKeeper | None:
    """The revenue keeper when ``[customers]`` is enabled with plan prices on a SQL store.

    The customers are read from ``[customers] database_url`` when set (the
    product's database), the ledger is kept in Jarvis's own.
    """
    from jarvis.loop.revenue import RevenueKeeper
    from jarvis.store.engine import create_engine, normalize_url
    from jarvis.store.revenue import RevenueLedger
    from jarvis.store.sql import SqlBackend

    section = settings.customers
    if not section.enabled or not section.plans or not isinstance(store.backend, SqlBackend):
        return None
    customers = None
    if section.database_url is not None:
        customers = create_engine(normalize_url(section.database_url))
    return RevenueKeeper(
        ledger=RevenueLedger(store.engine, customers=customers),
        prices=section.monthly_prices(),
        clock=clock,
        metrics=metrics,
        interval=section.revenue_interval_seconds,
    )
