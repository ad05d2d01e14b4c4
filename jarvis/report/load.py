"""Read what one UTC day's report needs from the store, and reduce it to figures.

Shared by `jarvis report` (a read-only store of its own) and the daemon's daily
delivery (`jarvis.report.deliver`, on the daemon's store), so both report the
same day the same way. The day's events are read an hour at a time and folded
into the figures as they come (`DayFold`), never held whole. Revenue comes from
the ledger's ``revenue_daily`` rows (`jarvis.store.revenue`) on a SQL store;
the cloud bill from ``cost://aws``.
With churn rules (customers managed), the medium-risk customers are judged
by the churn policy's own `assess` at the day's end, from the ``customers``
table and ``llm_usage`` as they stand when the report is made (the event log
holds no activity to replay).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import datetime, timedelta

from jarvis.model import Event, EventKind, RevenueDay, month_bounds
from jarvis.policies.churn import ChurnRules, medium_risk
from jarvis.report.figures import (
    DailyFigures,
    DayFold,
    FirstRecoveries,
    finish_figures,
    open_escalations,
    unhealthy_since,
)
from jarvis.store import EventStore
from jarvis.store.revenue import RevenueLedger
from jarvis.store.sql import SqlBackend

__all__ = ["REPORTED_KINDS", "load_figures"]

REPORTED_KINDS = [
    EventKind.ACTION_APPLIED,
    EventKind.ACTION_FAILED,
    EventKind.ACTION_UNKNOWN,
    EventKind.ACTION_BLOCKED,
    EventKind.ACTION_ESCALATED,
    EventKind.RESOURCE_CHANGED,
    EventKind.RETRIES_RESET,
    EventKind.METRICS_SAMPLED,
]
"""The kinds the figures read: ticks and proposals, most of a day's rows, are left in the store."""


HOUR = timedelta(hours=1)
_TICK = timedelta(microseconds=1)
"""The resolution of stored times: ``until=next - _TICK`` stops just before ``next``."""

CARRY_BACK = timedelta(days=7)
"""How far back the start of an incident the day mended is looked for (`unhealthy_since`):
one with no change in that week is left out of the day's incidents."""
CARRIED_KINDS = [EventKind.RESOURCE_CHANGED, EventKind.ACTION_ESCALATED, EventKind.RETRIES_RESET]
ESCALATIONS_BACK = timedelta(days=30)
"""How far back escalations still open when the day begins are looked for: the
default retention (`retention.max_age_days`). One older that nothing answered
has its resource quarantined still, which "Quarantined now" lists."""


async def load_figures(
    store: EventStore,
    start: datetime,
    budget_usd: float,
    churn: ChurnRules | None = None,
    *,
    include_cloud: bool = True,
) -> DailyFigures:
    """The figures of the UTC day beginning at ``start``.

    ``budget_usd`` and ``include_cloud`` are ``cost.monthly_budget_usd`` and
    ``cost.include_cloud_spend``: the spend is judged against the budget as
    the cost policy judges it.
    """
    end = start + timedelta(days=1) - _TICK
    llm = await store.events_by_time(
        kinds=[EventKind.RESOURCE_CHANGED],
        resource="cost://llm",
        since=month_bounds(end)[0],
        until=end,
    )
    cloud = await store.events_by_time(
        kinds=[EventKind.RESOURCE_CHANGED],
        resource="cost://aws",
        since=month_bounds(end)[0],
        until=end,
    )
    ledger = await store.load_retries()
    # Two passes over the day, each an hour at a time: the first finds the
    # incidents the day mends that began before it, which the second starts from.
    first = FirstRecoveries()
    async for hour in _hours(store, [EventKind.RESOURCE_CHANGED], start):
        for event in hour:
            first.add(event)
    carried: dict[str, tuple[datetime, bool]] = {}
    for resource in first.found:
        before = await store.events_by_time(
            kinds=CARRIED_KINDS,
            resource=resource,
            since=start - CARRY_BACK,
            until=start - _TICK,
        )
        found = unhealthy_since(before)
        if found is not None:
            carried[resource] = found
    at_risk = None
    if churn is not None:
        from jarvis.store.customers import customer_facets  # noqa: PLC0415 - customers only

        at_risk = medium_risk(await customer_facets(store.engine, end), end, churn)
    fold = DayFold(
        start, carried=carried, escalations_before=await _escalations_open_at(store, start)
    )
    async for hour in _hours(store, REPORTED_KINDS, start):
        for event in hour:
            fold.add(event)
    return finish_figures(
        fold.figures(),
        llm_observations=llm,
        quarantined=ledger.values(),
        budget_usd=budget_usd,
        revenue_days=await _revenue(store, start),
        cloud_observations=cloud,
        medium_risk=at_risk,
        include_cloud=include_cloud,
    )


async def _hours(
    store: EventStore, kinds: Sequence[str], start: datetime
) -> AsyncIterator[list[Event]]:
    """The day's events of ``kinds``, an hour at a time, oldest first (by time, then id).

    A day at a million events is about 0.7 GB as one list; an hour is a 24th.
    """
    for hour in range(24):
        since = start + timedelta(hours=hour)
        yield await store.events_by_time(kinds=kinds, since=since, until=since + HOUR - _TICK)


async def _escalations_open_at(store: EventStore, start: datetime) -> list[Event]:
    """The escalations of the `ESCALATIONS_BACK` before ``start`` still open at ``start``.

    Each escalated resource's own record since its first escalation says
    whether a reset or a recovery answered it (`open_escalations`).
    """
    until = start - _TICK
    first: dict[str, datetime] = {}
    for event in await store.events_by_time(
        kinds=[EventKind.ACTION_ESCALATED], since=start - ESCALATIONS_BACK, until=until
    ):
        if event.resource:
            first.setdefault(event.resource, event.ts)
    found: list[Event] = []
    for resource, since in sorted(first.items()):
        record = await store.events_by_time(
            kinds=CARRIED_KINDS, resource=resource, since=since, until=until
        )
        found += open_escalations(record)
    return sorted(found, key=lambda e: e.ts)


async def _revenue(store: EventStore, start: datetime) -> list[RevenueDay]:
    """The month's settled days up to ``start``'s (and the last one before, for day one)."""
    if not isinstance(store.backend, SqlBackend):
        return []  # the simulation's memory store keeps no ledger
    first = month_bounds(start)[0].date() - timedelta(days=31)
    return await RevenueLedger(store.engine).days(first, start.date())
