"""The composition root: builds policies, the guard, the store and the reconciler
from settings, and the sensors and actuators through the provider registry
(`jarvis.providers`).

The CLI, the simulation and the end-to-end tests call `build_app`; nothing else
constructs these objects, and there are no singletons or registration on import.
Cloud SDKs are imported lazily, only for the providers that are configured, so
start-up stays fast on the embedded default.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

from jarvis.model import ActionKind, Clock
from jarvis.providers import (
    PROVIDERS,
    Provider,
    build_metric_sources,
    build_sensors,
    check_allowlist,
    check_table,
)

if TYPE_CHECKING:
    # The loop, the guard and the metrics are imported by the functions that
    # build them: `jarvis killswitch engage` uses this module only to open the
    # store and the switch, and must not wait for the rest (issue 11 item 10).
    from jarvis.actuators.base import MetricSource, Sensor
    from jarvis.config import Settings
    from jarvis.loop.endpoints import EndpointConfig
    from jarvis.loop.killswitch import KillSwitch
    from jarvis.loop.reconciler import Reconciler
    from jarvis.loop.revenue import RevenueKeeper
    from jarvis.notify import Notifier
    from jarvis.notify.channels import Channel
    from jarvis.policies.base import Policy
    from jarvis.policies.churn import ChurnRules
    from jarvis.policies.failover import FailoverPolicy
    from jarvis.report.deliver import ReportSender
    from jarvis.safety import Budgets, Guard
    from jarvis.safety.breakers import BreakerPolicy
    from jarvis.store import EventStore, KillSwitchBackend
    from jarvis.telemetry.metrics import Metrics


@dataclass
class App:
    settings: Settings
    clock: Clock
    store: EventStore
    killswitch: KillSwitch
    reconciler: Reconciler
    metrics: Metrics
    actuators: list[Sensor] = field(default_factory=list)
    sources: list[MetricSource] = field(default_factory=list)

    async def aclose(self) -> None:
        for actuator in self.actuators:
            await actuator.aclose()
        for source in self.sources:
            await source.aclose()
        await self.killswitch.backend.aclose()
        await self.store.aclose()


async def open_store(settings: Settings, *, auto_migrate: bool | None = None) -> EventStore:
    from jarvis.store import EventStore, Redactor

    return await EventStore.connect(
        settings.database_url,
        spool_path=settings.spool_path,
        auto_migrate=auto_migrate,
        redactor=Redactor(settings.secrets),
    )


def killswitch_backend(settings: Settings, store: EventStore) -> KillSwitchBackend:
    if settings.redis_url:
        from jarvis.store.redis_killswitch import RedisKillSwitch

        return RedisKillSwitch(settings.redis_url)
    from jarvis.store import DbKillSwitch

    return DbKillSwitch(store.engine)


def build_guard(settings: Settings) -> Guard:
    from jarvis.safety import (
        AllowList,
        AllowRule,
        Bounds,
        DnsWeightBounds,
        Guard,
        RetryBudget,
        ScaleBounds,
        WeightBounds,
    )

    rules = [
        AllowRule(provider=e.provider, resources=e.resources, actions=frozenset(e.actions))
        for e in settings.allowlist
    ]
    return Guard(
        allowlist=AllowList(rules),
        bounds=Bounds(
            max_actions_per_tick=settings.bounds.max_actions_per_tick,
            # Kind name -> its bound; a kind not listed has no kind-specific bound.
            kinds={
                ActionKind.SCALE: ScaleBounds(max_replicas=settings.bounds.max_replicas),
                ActionKind.SET_WEIGHTS: WeightBounds(
                    max_traffic_shift=settings.bounds.max_traffic_shift
                ),
                ActionKind.SET_DNS_WEIGHTS: DnsWeightBounds(
                    max_weight_shift=settings.bounds.max_dns_weight_shift
                ),
            },
        ),
        retry=RetryBudget(
            max_attempts=settings.retry.max_attempts,
            window=timedelta(seconds=settings.retry.window_seconds),
            backoff_ticks=tuple(settings.retry.backoff_ticks),
            interval=timedelta(seconds=settings.loop.interval),
        ),
        budgets=build_budgets(settings),
    )


def build_breakers(settings: Settings) -> tuple[BreakerPolicy, BreakerPolicy] | None:
    """The provider and fleet breaker policies; None when breakers are turned off."""
    from jarvis.safety.breakers import BreakerPolicy

    section = settings.breakers
    if not section.enabled:
        return None
    window = timedelta(seconds=section.window_seconds)
    cooldown = timedelta(seconds=section.cooldown_seconds)
    provider = BreakerPolicy(section.provider_threshold, window, cooldown)
    # The fleet's threshold is max(3, half the fleet), given per tick; 3 is its floor.
    return provider, BreakerPolicy(3, window, cooldown)


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
    from jarvis.store.outbox import MemoryOutbox, NotificationOutbox, Outbox

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


def build_budgets(settings: Settings) -> Budgets:
    """The ``[[budgets]]`` entries as the guard's `DisruptionBudget`s (validated by config)."""
    from jarvis.model.hours import Hours, WeeklyHours, parse_days
    from jarvis.safety import Budgets, DisruptionBudget

    budgets: list[DisruptionBudget] = []
    for entry in settings.budgets:
        schedule = None
        if entry.schedule is not None:
            windows = tuple(Hours(h.start, h.end, parse_days(h.days)) for h in entry.schedule.hours)
            schedule = WeeklyHours(timezone=entry.schedule.timezone, windows=windows)
        budgets.append(
            DisruptionBudget(
                name=entry.name,
                window=timedelta(seconds=entry.window_seconds),
                max_changes=entry.max,
                max_percent=entry.max_percent,
                provider=entry.provider,
                kinds=frozenset(entry.actions),
                resources=entry.resources,
                per_resource=entry.per == "resource",
                schedule=schedule,
            )
        )
    return Budgets(budgets)


def build_endpoint_watch(settings: Settings) -> EndpointConfig:
    """The SLOs, each endpoint's metric labels and the resource it serves, for `EndpointWatch`."""
    from jarvis.loop.endpoints import EndpointConfig
    from jarvis.policies.slo import Objective

    endpoints = settings.probes.endpoints
    objectives = tuple(
        Objective(
            name=slo.name,
            endpoints=frozenset(e.uri for e in endpoints if slo.selects(e)),
            p95_ms=slo.p95_ms,
            window=timedelta(seconds=slo.window_seconds),
            min_samples=slo.min_samples,
            severity=slo.severity,
        )
        for slo in settings.probes.slos
    )
    labels = {e.uri: (e.name, e.region, e.cloud) for e in endpoints}
    serves = {e.uri: e.serves for e in endpoints if e.serves is not None}
    return EndpointConfig(objectives=objectives, labels=labels, serves=serves)


def build_policies(settings: Settings) -> list[Policy]:
    policies: list[Policy] = []
    if settings.heal.enabled:
        from jarvis.policies.heal import HealPolicy

        policies.append(HealPolicy(restart_degraded=settings.heal.restart_degraded))
    if settings.rollback.enabled:
        from jarvis.policies.rollback import RollbackPolicy

        policies.append(RollbackPolicy.from_config(settings.rollback.model_dump()))
    if settings.scaling.enabled:
        from jarvis.policies.scaling import ScalingPolicy

        policies.append(ScalingPolicy.from_config(settings.scaling.model_dump()))
    if settings.cost.enabled:
        from jarvis.policies.cost import CostPolicy

        policies.append(
            CostPolicy.from_settings(
                settings.cost, settings.routing, max_shift=settings.bounds.max_traffic_shift
            )
        )
    if settings.customers.enabled:
        from jarvis.policies.dunning import DunningPolicy
        from jarvis.policies.onboarding import OnboardingPolicy

        policies.append(OnboardingPolicy())
        policies.append(DunningPolicy())
        if settings.customers.churn.enabled:
            from jarvis.policies.churn import ChurnPolicy

            policies.append(ChurnPolicy(churn_rules(settings)))
    if settings.failover.enabled:
        policies.append(build_failover(settings))
    return policies


def build_failover(settings: Settings) -> FailoverPolicy:
    """The failover policy over ``[failover]`` groups, stepping as far as the guard allows."""
    from jarvis.policies.failover import FailoverGroup, FailoverPolicy, FailoverTarget

    section = settings.failover
    uris = {e.name: e.uri for e in settings.probes.endpoints}  # config checked every name
    groups = [
        FailoverGroup(
            uri=group.uri,
            targets=tuple(
                FailoverTarget(
                    set_identifier=t.set_identifier,
                    weight=t.weight,
                    endpoints=tuple(uris[name] for name in t.endpoints),
                    sensor=t.sensor,
                )
                for t in group.targets
            ),
        )
        for group in section.groups
    ]
    return FailoverPolicy(
        groups,
        fail_ticks=section.fail_ticks,
        recover_ticks=section.recover_ticks,
        max_shift=settings.bounds.max_dns_weight_shift,
    )


def churn_rules(settings: Settings) -> ChurnRules:
    """The churn policy's rules from ``[customers.churn]`` (the daily report uses them too)."""
    from datetime import timedelta

    from jarvis.policies.churn import ChurnRules

    churn = settings.customers.churn
    return ChurnRules(
        high_after=timedelta(days=churn.high_days),
        medium_after=timedelta(days=churn.medium_days),
        cooldown=timedelta(days=churn.cooldown_days),
        free_plans=frozenset(churn.free_plans),
        percent_off=churn.percent_off,
        valid_days=churn.valid_days,
    )


def report_churn_rules(settings: Settings) -> ChurnRules | None:
    """The rules the daily report lists medium churn risk by: when the churn policy runs
    on customers kept in the store's own database, else None (no list)."""
    customers = settings.customers
    if not (customers.enabled and customers.churn.enabled) or customers.database_url:
        return None
    return churn_rules(settings)


def history_size(settings: Settings) -> int:
    """Snapshots to keep: enough to cover the scaling stabilization window and the
    failover policy's consecutive ticks."""
    needed = 0
    if settings.scaling.enabled:
        needed = math.ceil(settings.scaling.stabilization_seconds / settings.loop.interval) + 2
    if settings.failover.enabled:
        failover = settings.failover
        needed = max(needed, max(failover.fail_ticks, failover.recover_ticks) + 1)
    return max(settings.loop.history_snapshots, needed)


async def build_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    actuators: Sequence[Sensor] | None = None,
    sources: Sequence[MetricSource] | None = None,
    providers: Sequence[Provider] = PROVIDERS,
    policies: Sequence[Policy] | None = None,
    metrics: Metrics | None = None,
    run_id: str | None = None,
    auto_migrate: bool | None = None,
    store: EventStore | None = None,
    switch: KillSwitchBackend | None = None,
    recover_orphans: bool = True,
) -> App:
    """Open the store, build everything, and start the reconciler (orphans closed).

    Sensors and actuators come from the ``providers`` table (`jarvis.providers`)
    unless ``actuators`` are given. ``store`` and ``switch`` replace the ones the
    settings name (the simulation passes in-memory ones); the app closes them
    with everything else. One-shot commands pass ``recover_orphans=False``: only
    the process that owns the loop closes intents a crash left open.
    """
    from jarvis.loop.clock import WallClock
    from jarvis.loop.killswitch import KillSwitch
    from jarvis.loop.reconciler import Reconciler
    from jarvis.telemetry.metrics import Metrics

    check_table(providers)
    check_allowlist(settings, providers)
    clock = clock or WallClock()
    metrics = metrics or Metrics()
    store = store or await open_store(settings, auto_migrate=auto_migrate)
    try:
        killswitch = KillSwitch(switch or killswitch_backend(settings, store), store, clock)
        built = (
            list(actuators) if actuators is not None else build_sensors(settings, clock, providers)
        )
        metric_sources = list(sources) if sources is not None else build_metric_sources(settings)
        reconciler = Reconciler(
            actuators=built,
            policies=list(policies) if policies is not None else build_policies(settings),
            guard=build_guard(settings),
            store=store,
            killswitch=killswitch,
            clock=clock,
            metrics=metrics,
            run_id=run_id or secrets.token_hex(3),
            observe_timeout=settings.loop.observe_timeout,
            apply_timeout=settings.loop.apply_timeout,
            dry_run=settings.dry_run,
            history_snapshots=history_size(settings),
            breakers=build_breakers(settings),
            sources=metric_sources,
            endpoints=build_endpoint_watch(settings),
            fleet_window=(
                timedelta(seconds=settings.loop.interval) if settings.loop.shards > 1 else None
            ),
        )
        await reconciler.start(recover_orphans=recover_orphans)
    except BaseException:
        await store.aclose()
        raise
    return App(
        settings=settings,
        clock=clock,
        store=store,
        killswitch=killswitch,
        reconciler=reconciler,
        metrics=metrics,
        actuators=built,
        sources=metric_sources,
    )
