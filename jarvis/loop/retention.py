"""Event retention as the daemon applies it: a prune soon after start, then one per interval.

`jarvis run` (`jarvis.cli.daemon`) runs `Pruner.run` beside the scheduler,
on every replica, and with several only the one doing the fleet-wide duties
prunes (`Pruner.leads`, `jarvis.loop.duties`); `jarvis db prune` calls
`Pruner.prune` once. The rules for what may go are the
store's (`jarvis.store.retention`); here is only when, the protected history
horizon (the policies' own, so a policy never loses the window it reads, and the
longest disruption-budget window, so a budget never loses a change it counts),
and the log line and counter per prune. A prune that fails is logged and tried
again at the next interval, whatever failed (the database down, a table gone,
a bug): retention must never stop the loop.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from datetime import timedelta

import anyio
import structlog

from jarvis.config.sections import RetentionSettings
from jarvis.loop.record import history_horizon
from jarvis.model import Clock
from jarvis.safety.budgets import Budgets
from jarvis.store import EventStore
from jarvis.telemetry.metrics import Metrics

log = structlog.get_logger("jarvis.retention")

FIRST_PRUNE_DELAY = 60.0
"""Seconds after start before the first prune: start-up (recovery, the first
tick) goes first, and a crash loop does not prune on every start."""


class Pruner:
    """Prunes ``store`` by ``retention``, never inside the history ``horizon``."""

    def __init__(
        self,
        store: EventStore,
        retention: RetentionSettings,
        clock: Clock,
        *,
        horizon: timedelta,
        metrics: Metrics | None = None,
    ) -> None:
        self.store = store
        self.retention = retention
        self.clock = clock
        self.horizon = horizon
        self.metrics = metrics
        self.shielded: Callable[[], AbstractContextManager[object, bool]] = lambda: (
            anyio.CancelScope(shield=True)
        )
        """The scope a prune runs in, kept from cancellation; `jarvis run`'s ends by its
        shutdown deadline (`jarvis.loop.shutdown`)."""
        self.leads: Callable[[], bool] = lambda: True
        """Whether this replica prunes: the one database's retention is a fleet-wide duty
        (`jarvis.loop.duties`); every replica pruning it repeated the same deletes."""

    @classmethod
    def for_policies(
        cls,
        store: EventStore,
        retention: RetentionSettings,
        clock: Clock,
        policies: Iterable[object],
        metrics: Metrics | None = None,
        *,
        budgets: Budgets | None = None,
    ) -> Pruner:
        """A pruner that keeps at least the longest history any of ``policies`` reads, and
        the intents inside the longest of ``budgets``' windows: the loop counts a budget
        from them (`jarvis.loop.budgets`), so one pruned would be a change forgotten."""
        horizon = max(history_horizon(policies), budgets.horizon if budgets else timedelta(0))
        return cls(store, retention, clock, horizon=horizon, metrics=metrics)

    async def prune(self, *, dry_run: bool = False) -> dict[str, int]:
        """One prune now; rows deleted (or, dry, that would be) per kind. Raises StoreError."""
        now = self.clock.now()
        deleted = await self.store.prune(
            self.retention, now=now, keep_after=now - self.horizon, dry_run=dry_run
        )
        if not dry_run and self.metrics is not None:
            for kind, count in deleted.items():
                self.metrics.events_pruned.labels(kind=kind).inc(count)
        return deleted

    async def run(self) -> None:
        """Prune every ``retention.interval`` seconds while `leads`, until cancelled; log each."""
        if not self.retention.enabled:
            return
        await self.clock.sleep(min(FIRST_PRUNE_DELAY, self.retention.interval))
        while True:
            if self.leads():
                await self._prune_logged()
            await self.clock.sleep(self.retention.interval)

    async def _prune_logged(self) -> None:
        """One prune, logged; an outage is logged too, and waits for the next interval."""
        deleted: dict[str, int] = {}  # unless the prune ends before the shutdown deadline
        try:
            # Whole or not at all: a shutdown waits for the prune's transactions
            # (bounded by the statement timeout) rather than cut one, up to its
            # deadline: a transaction cut then is rolled back.
            with self.shielded():
                deleted = await self.prune()
        except Exception as exc:  # retention must never stop the daemon
            why = self.store.outage(exc)
            if why is None:  # a bug: its traceback
                log.exception("event retention failed; trying again at the next interval")
            else:
                log.warning("event retention skipped; trying again at the next interval", error=why)
        else:
            if deleted:
                log.info("events pruned", total=sum(deleted.values()), by_kind=deleted)
