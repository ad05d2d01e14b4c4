"""The revenue keeper: settles today's MRR every so often and sets the revenue gauges.

Run by the daemon beside the scheduler (`jarvis.cli.daemon`), like the pruner
and the report sender, never inside a tick: settling reads every customer once,
which is a daily bookkeeping cost, not a per-tick one. Built by the composition
root (`jarvis.app.build_revenue_keeper`) when ``[customers]`` is enabled with
plan prices and the store is SQL. With several replicas one settles: the book
is one per database, and two settlements at once fight over its rows (a
duplicate day). It is a fleet-wide duty (`jarvis.loop.duties`): the leader's,
or with shards shard 0's holder's, not every shard holder's. Another replica
exports no revenue gauge (`jarvis.telemetry.metrics`), so summed or maxed over the
replicas they count the book once. A failed settlement is logged and tried again at the next
interval: revenue is reported, never acted on, so a gap costs a late figure.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC

import anyio
import structlog

from jarvis.model import Clock, RevenueDay
from jarvis.store.errors import StoreError, said
from jarvis.store.revenue import RevenueLedger
from jarvis.telemetry.metrics import Metrics

__all__ = ["RevenueKeeper"]

log = structlog.get_logger("jarvis.revenue")


@dataclass
class RevenueKeeper:
    """Settles today (UTC) every ``interval`` seconds; `check` is one settlement."""

    ledger: RevenueLedger
    prices: Mapping[str, float]
    clock: Clock
    metrics: Metrics
    interval: float = 3600.0
    leads: Callable[[], bool] = field(default=lambda: True)
    shielded: Callable[[], AbstractContextManager[object, bool]] = field(
        default=lambda: anyio.CancelScope(shield=True)
    )
    """The scope a settlement and the closing run in, kept from cancellation; `jarvis run`'s
    ends by its shutdown deadline (`jarvis.loop.shutdown`)."""

    async def run(self) -> None:
        try:
            while True:
                try:
                    # One settlement is one transaction: a shutdown waits for it (bounded
                    # by the statement timeout and the shutdown deadline) rather than cut
                    # it, since a connection cancelled mid-query can leave a close behind.
                    with self.shielded():
                        await self.check()
                except StoreError as exc:  # an outage: one line, as the store says it
                    log.warning(
                        "revenue: settlement failed; trying again at the next interval",
                        error=said(exc),
                    )
                except Exception:  # a bug in revenue must never stop the daemon either
                    log.exception("revenue: settlement failed; trying again at the next interval")
                await self.clock.sleep(self.interval)
        finally:
            with self.shielded():
                await self.ledger.aclose()

    async def check(self) -> RevenueDay | None:
        """Settle today and set the gauges; None on a replica without the fleet-wide duties,
        which forgets its last settlement (`Metrics.fleet_duties` already hides it): taking
        the duties back later, it exports nothing until it settles again."""
        if not self.leads():
            self.metrics.revenue(None)
            return None
        now = self.clock.now()
        day = await self.ledger.settle(now.astimezone(UTC).date(), self.prices, now)
        self.metrics.revenue(day)
        log.info(
            "revenue.settled",
            day=day.day.isoformat(),
            mrr_usd=round(day.mrr_usd, 2),
            paying=day.paying,
            unpriced=day.unpriced,
        )
        return day
