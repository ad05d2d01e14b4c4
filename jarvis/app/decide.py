"""What the loop decides with, built from settings: the policies, the guard and its
breakers and budgets, the endpoint SLOs, and how many snapshots the policies need.

Each builder imports what it builds when it is called: a command that never
builds a loop (the kill switch, `--help`) never loads the policies or the
guard (issue 11 item 10).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING

from jarvis.model import ActionKind

if TYPE_CHECKING:
    from jarvis.config import Settings
    from jarvis.loop.endpoints import EndpointConfig
    from jarvis.policies.base import Policy
    from jarvis.policies.churn import ChurnRules
    from jarvis.policies.failover import FailoverPolicy
    from jarvis.safety import Budgets, Guard
    from jarvis.safety.breakers import BreakerPolicy

__all__ = [
    "build_breakers",
    "build_budgets",
    "build_endpoint_watch",
    "build_failover",
    "build_guard",
    "build_policies",
    "churn_rules",
    "history_size",
    "report_churn_rules",
]


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
    timeouts_ms = {e.uri: e.timeout_seconds * 1000.0 for e in endpoints}
    return EndpointConfig(
        objectives=objectives, labels=labels, serves=serves, timeouts_ms=timeouts_ms
    )


def build_policies(settings: Settings) -> list[Policy]:
    """The enabled policies, or ConfigError naming the one that refuses its settings."""
    policies: list[Policy] = []
    if settings.heal.enabled:
        from jarvis.policies.heal import HealPolicy

        heal = settings.heal
        grace = timedelta(seconds=heal.start_grace_seconds)
        policies.append(HealPolicy(restart_degraded=heal.restart_degraded, start_grace=grace))
    if settings.rollback.enabled:
        from jarvis.policies.rollback import RollbackPolicy

        rollback = settings.rollback.model_dump()
        policies.append(_built("rollback", lambda: RollbackPolicy.from_config(rollback)))
    if settings.scaling.enabled:
        from jarvis.policies.scaling import ScalingPolicy

        scaling = settings.scaling.model_dump()
        policies.append(_built("scaling", lambda: ScalingPolicy.from_config(scaling)))
    if settings.cost.enabled:
        from jarvis.policies.cost import CostPolicy

        cost, routing, shift = settings.cost, settings.routing, settings.bounds.max_traffic_shift
        policies.append(
            _built("cost", lambda: CostPolicy.from_settings(cost, routing, max_shift=shift))
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
        policies.append(_built("failover", lambda: build_failover(settings)))
    return policies


def _built(name: str, build: Callable[[], Policy]) -> Policy:
    """``build()``, or ConfigError naming the policy when it refuses its settings.

    Config validates what each policy checks again, so none should; when a section and its
    policy drift apart (the cost policy's unpriced models and the overflowing windows were
    such drifts), the operator reads one line of `config check` or `run`, not a traceback.
    """
    from jarvis.config import ConfigError

    try:
        return build()
    except (ValueError, ArithmeticError, LookupError) as exc:
        raise ConfigError(
            f"invalid configuration: the {name} policy refuses its settings: {exc}"
        ) from None


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
    """Snapshots to keep: enough for the scaling policy's windows, rate periods and
    cooldowns, the rollback policy's watch window and baseline, and the failover
    policy's consecutive ticks. Memory grows with the longest of them."""
    interval = settings.loop.interval
    needed = 0
    if settings.scaling.enabled:
        needed = math.ceil(settings.scaling.history_seconds() / interval) + 2
    if settings.rollback.enabled:
        needed = max(needed, settings.rollback.history_ticks(interval))
    if settings.failover.enabled:
        failover = settings.failover
        needed = max(needed, max(failover.fail_ticks, failover.recover_ticks) + 1)
    return max(settings.loop.history_snapshots, needed)
