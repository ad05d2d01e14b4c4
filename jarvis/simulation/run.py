"""One simulation's moving parts, and what it does around each of the scheduler's ticks.

Built by the harness (`jarvis.simulation.harness.run_simulation`) and handed to
the real `jarvis.loop.scheduler.Scheduler` as its `TickHooks`: before a tick,
faults from the seeded plan and the simulated operator strike; after it, the
operator's mid-tick actions and the invariant checker, which reads what the
store recorded and what the provider witnessed. The first violation, or the
end time, ends the run; `SimulationRun.run` then fills the report. A process
fault (`jarvis.simulation.process_faults`) may kill and restart the daemon
between ticks: `SimulationRun.app` is then the new one, and the scheduler,
the operator and the notifier are handed its reconciler, switch and store.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from jarvis.app import App, build_notifier, churn_rules
from jarvis.config import Settings
from jarvis.loop.clock import VirtualClock
from jarvis.loop.scheduler import Scheduler, TickResult
from jarvis.model import EventKind
from jarvis.notify.channels import Recorder
from jarvis.notify.notice import Notice
from jarvis.policies.base import Policy
from jarvis.simulation.customers import SimulatedCustomers
from jarvis.simulation.dns import SimulatedRegions
from jarvis.simulation.faults import PROCESS_FAULTS, REPLICA_FAULTS, Fault, FaultKind, plan_faults
from jarvis.simulation.handoff import Handoff
from jarvis.simulation.invariant_records import Rules
from jarvis.simulation.invariants import InvariantChecker
from jarvis.simulation.llm import SimulatedLlm
from jarvis.simulation.operator import Operator
from jarvis.simulation.process_faults import ProcessFaults
from jarvis.simulation.provider import SimulatedProvider
from jarvis.simulation.replicas import ReplicaSet
from jarvis.simulation.report import SimulationReport
from jarvis.simulation.run_config import START, ProgressCallback, SimulationConfig
from jarvis.simulation.tracking import Budget, Capacity, Incidents, Tally
from jarvis.store import EventStore, LeaseLostError, MemoryBackend, MemoryKillSwitch, StoreError

if TYPE_CHECKING:
    from jarvis.notify import Notifier

_SERVICE_FAULTS = {FaultKind.CRASH, FaultKind.BAD_DEPLOY, FaultKind.NEVER_RECOVERS, FaultKind.SPIKE}
_DOWNTIME = {FaultKind.OUTAGE, FaultKind.DATABASE_OUTAGE, FaultKind.REDIS_OUTAGE}
"""Faults that take something away until a moment, overlapping ones extending it."""
_EVENT_PAGE = 100_000


class SimulationRun:
    """One simulation's moving parts, and what it does around each of the scheduler's ticks."""

    def __init__(
        self,
        *,
        app: App,
        progress: ProgressCallback | None,
        clock: VirtualClock,
        provider: SimulatedProvider,
        llm: SimulatedLlm,
        settings: Settings,
        config: SimulationConfig,
        rules: Rules,
        database: MemoryBackend | None,
        switch: MemoryKillSwitch,
        replicas: ReplicaSet | None = None,
        policies: Sequence[Policy] | None = None,
        regions: SimulatedRegions | None = None,
        customers: SimulatedCustomers | None = None,
    ) -> None:
        self.app = app
        self.regions = regions
        """The two DNS regions ``region_dark`` strikes, when the run names it."""
        self.lit: list[tuple[datetime, str]] = []
        """(when, region): dark regions due to come back."""
        self.customers = customers
        self.replicas = replicas
        """Several replicas (a run with replica faults); the scheduler ticks whichever leads."""
        self.record = app.store if replicas is None or database is None else EventStore(database)
        """Where the checker reads the record: past any one replica's partition."""
        self.settings = settings
        self.progress = progress
        self.database = database
        """The event database, when it is in memory (only then can it be taken away)."""
        self.switch = switch
        self.clock = clock
        self.provider = provider
        self.fleet = provider.fleet
        self.llm = llm
        self.interval = settings.loop.interval
        self.scheduler = Scheduler(
            app.reconciler,
            clock,
            app.metrics,
            interval=settings.loop.interval,
            jitter=settings.loop.jitter,
            tick_timeout=settings.tick_timeout,
            shutdown_grace=settings.loop.shutdown_grace,
            rng=random.Random(f"{config.seed}:jitter"),  # noqa: S311 -- a reproducible simulation
            hooks=self,
            gate=replicas,
        )
        if replicas is not None:
            replicas.scheduler = self.scheduler
        self.end = START + timedelta(days=config.days)
        self.faults = plan_faults(
            seed=config.seed,
            start=START,
            days=config.days,
            services=self.fleet.names,
            kinds=config.faults,
            intensity=config.intensity,
            routes=llm.route_names,
        )
        self.operator = Operator(
            killswitch=app.killswitch, store=app.store, provider=provider, seed=config.seed
        )
        self.checker = InvariantChecker(rules)
        self.processes = ProcessFaults(
            settings=settings,
            clock=clock,
            database=database,
            switch=switch,
            provider=provider,
            checker=self.checker,
            policies=policies,
            seed=config.seed,
            engages_planned=FaultKind.KILLSWITCH in config.faults,
        )
        self.tally = Tally()
        self.incidents = Incidents()
        self.handoff = Handoff()
        self.capacity = Capacity()
        self.budget = Budget(
            settings.cost.monthly_budget_usd, unmanaged=llm.baseline_month_to_date_usd
        )
        self.injected: Counter[str] = Counter()
        self.surges: list[tuple[datetime, str]] = []
        self.down_until: dict[FaultKind, datetime] = {}
        self.last_event_id = 0
        self.pages: list[Notice] = []
        self.seed = config.seed
        self.notifier = self._notifier()
        self.notifier_started = False
        self.held_back = False  # at the end, events waited in the spool: check them once more

    async def run(self, report: SimulationReport) -> None:
        wall = time.perf_counter()
        await self.scheduler.run()
        if self.replicas is not None:
            await self.replicas.settle()
        if self.held_back:
            # The scheduler's last flush replayed the spool: check what it held back.
            await self._read_record()
            self.checker.feed_calls(self.provider.drain())
            self.checker.end_tick(None, [])
        self._fill(report, time.perf_counter() - wall)

    async def before_tick(self, now: datetime) -> bool:
        """Strike what is due; at the end time, end the run before this tick."""
        if now >= self.end:
            self._bring_back()
            return False
        await self._inject(now)
        return True

    async def after_tick(self, result: TickResult) -> bool:
        """Let the operator finish, check the invariants; the first violation ends the run."""
        if result.error is not None and not (
            self.replicas is not None and isinstance(result.error, LeaseLostError)
        ):
            raise result.error  # the daemon would go on; a simulation must fail on a bug
        await self.operator.between_ticks(self.clock.now(), include_mid_tick=True)
        tick = result.report
        await self._check(None if tick is None else tick.tick_id)
        await self._notify()
        if tick is not None:
            self.budget.observe(tick.snapshot.resources, tick.started_at)
        if self.progress is not None:
            total = (self.end - START).total_seconds()
            self.progress(min(total, (self.clock.now() - START).total_seconds()), total)
        if not self.checker.ok:
            self._bring_back()
            return False
        return True

    async def _notify(self) -> None:
        """One notifier round after each tick (it polls far more often in the daemon)."""
        if self.notifier is None:
            return
        try:
            if not self.notifier_started:
                await self.notifier.start()
                self.notifier_started = True
            await self.notifier.round()
        except StoreError:
            return  # the database is away; the round after it returns catches up

    def _bring_back(self) -> None:
        """Give back what is down before the scheduler's last flush, which replays the spool."""
        for kind in list(self.down_until):
            self._set_down(kind, down=False)
        self.down_until.clear()
        if self.replicas is not None:
            self.replicas.heal()
        spooled = self.app.store.spooled if self.replicas is None else self.replicas.spooled
        self.held_back = spooled > 0

    async def _inject(self, now: datetime) -> None:
        while self.faults and self.faults[0].at <= now:
            fault = self.faults.pop(0)
            if fault.kind in PROCESS_FAULTS:
                applied = await self.processes.strike(
                    fault, now, engaged=self.operator.engaged, database_down=self._database_down
                )
            else:
                applied = self._strike(fault, now)
            if applied:
                self.injected[fault.kind.value] += 1
        for until, name in [s for s in self.surges if s[0] <= now]:
            self.fleet.surge(name, 1.0)
            self.surges.remove((until, name))
        if self.lit:  # dark regions are rare; skip the comprehension on every other tick
            for until, region in [d for d in self.lit if d[0] <= now]:
                if self.regions is not None:
                    self.regions.set_dark(region, dark=False)
                self.lit.remove((until, region))
        self._give_back(now)
        await self.operator.between_ticks(now)
        await self._strike_process(now)

    def _give_back(self, now: datetime) -> None:
        """End the downtimes due by ``now``."""
        for kind, until in list(self.down_until.items()):
            if now >= until:
                del self.down_until[kind]
                self._set_down(kind, down=False)

    async def _strike_process(self, now: datetime) -> None:
        """A deferred Redis restart once the switch is engaged; a kill whose time has come."""
        if self.processes.pending_wipe and self.processes.wipe_redis(self.operator.engaged):
            self.injected[FaultKind.REDIS_RESTART.value] += 1
        for _ in range(self.processes.crashes_due(now)):
            await self._restart()

    def _database_down(self, now: datetime, until: datetime) -> None:
        """Take the database away from ``now`` until at least ``until``."""
        self._set_down(FaultKind.DATABASE_OUTAGE, down=True)
        kind = FaultKind.DATABASE_OUTAGE
        self.down_until[kind] = max(until, self.down_until.get(kind, now))

    async def _restart(self) -> None:
        """Kill the daemon and start it again; everyone who held the old app gets the new."""
        app = await self.processes.restart(self.app, self._give_back)
        self.app = app
        self.record = app.store  # process faults never run beside replicas
        self.scheduler.reconciler = app.reconciler
        self.operator.rebind(killswitch=app.killswitch, store=app.store)
        self.notifier = self._notifier()
        self.notifier_started = False

    def _notifier(self) -> Notifier | None:
        """The real notifier, in virtual time, paging a recorder: how often a human is woken."""
        app = self.app
        pager = Recorder("pager", self.pages)
        notifier = build_notifier(
            self.settings, app.store, self.clock, app.metrics, seed=self.seed, pager=pager
        )
        if notifier is not None:
            # Replicas lead under leases, as `jarvis run` on PostgreSQL: none acts in an outage.
            notifier.leased = self.replicas is not None
        return notifier

    def _set_down(self, kind: FaultKind, *, down: bool) -> bool:
        """Take away (or give back) what ``kind`` strikes; False if this run cannot."""
        if kind is FaultKind.OUTAGE:
            self.fleet.set_api_failing(down)
        elif kind is FaultKind.DATABASE_OUTAGE:
            if self.database is None:
                return False  # a real database cannot be taken away from here
            self.database.available = not down
        elif kind is FaultKind.REDIS_OUTAGE:
            self.switch.available = not down
            self.provider.record_switch_store(readable=not down)
        return True

    def _strike(self, fault: Fault, now: datetime) -> bool:
        if fault.kind in REPLICA_FAULTS:
            # Only a run with replicas has them (the harness builds replicas when one is named).
            replicas, seconds = self.replicas, fault.duration.total_seconds()
            return replicas is not None and replicas.strike(fault.kind, seconds)
        if fault.kind is FaultKind.REGION_DARK:
            return self._darken(fault, now)
        return self._apply_fault(fault, now)

    def _darken(self, fault: Fault, now: datetime) -> bool:
        """A region goes dark until the fault's end; one already dark stays until its own."""
        region = fault.target or ""
        if self.regions is None or not self.regions.set_dark(region, dark=True):
            return False
        self.lit.append((now + fault.duration, region))
        return True

    def _apply_fault(self, fault: Fault, now: datetime) -> bool:
        """Strike; False when the fault does not apply to this run (it is then not counted)."""
        kind, target = fault.kind, fault.target or ""
        if kind is FaultKind.CRASH:
            self.fleet.crash(target)
        elif kind is FaultKind.BAD_DEPLOY:
            self.fleet.bad_deploy(target)
        elif kind is FaultKind.NEVER_RECOVERS:
            self.fleet.crash(target)
            self.fleet.break_permanently(target)
        elif kind is FaultKind.SPIKE:
            self.fleet.surge(target, fault.magnitude)
            self.surges.append((now + fault.duration, target))
        elif kind is FaultKind.LLM_SURGE:
            return self.llm.surge(fault.target, fault.magnitude, now + fault.duration)
        elif kind in {FaultKind.THROTTLING, FaultKind.API_ERRORS, FaultKind.TIMEOUTS}:
            self.provider.start_episode(kind, now + fault.duration, fault.magnitude)
        elif kind in _DOWNTIME:
            if not self._set_down(kind, down=True):
                return False
            self.down_until[kind] = max(now + fault.duration, self.down_until.get(kind, now))
        elif kind is FaultKind.CLOCK_JUMP:
            self.clock.jump(now + timedelta(seconds=fault.magnitude))
        elif kind is FaultKind.KILLSWITCH:
            self.operator.schedule_killswitch(fault)

        if kind in _SERVICE_FAULTS:
            self.incidents.opened(kind, target, now)
        return True

    async def _check(self, tick_id: str | None) -> None:
        settled = await self._read_record()
        if settled:
            await self.processes.check_restart(self.app.store)
        self.checker.feed_calls(self.provider.drain())
        if self.customers is not None:
            self.checker.feed_customers(*self.customers.drain())
        states = self.fleet.states()
        routes = self.llm.route_states(self.clock.now())
        self.checker.end_tick(tick_id, [*states, *routes], settled=settled)
        self.incidents.operator_touched(self.operator.repaired)
        self.operator.repaired.clear()
        self.incidents.observe(states, self.clock.now())
        self.capacity.observe(states, self.interval / 60)

    async def _read_record(self) -> bool:
        """Feed the events stored since the last read; False while some wait in the spool."""
        try:
            events = await self.record.events(after_id=self.last_event_id, limit=_EVENT_PAGE)
        except StoreError:
            return False
        if events and events[-1].id is not None:
            self.last_event_id = events[-1].id
        self.checker.feed_events(events)
        now = self.clock.now()
        for resource in self.tally.feed(events):
            self.handoff.escalated(self.incidents.cause(resource))
            self.operator.escalated(resource, now)
        for event in events:
            if event.kind is EventKind.ALERT and "breaker" in event.payload:
                self.handoff.alert(event)
        self.budget.feed(events)
        if self.replicas is not None:
            return not self.replicas.spooled
        return not self.app.store.spooled

    def _fill(self, report: SimulationReport, wall: float) -> None:
        report.ticks = self.scheduler.ticks
        report.scheduler = {
            "overruns": self.scheduler.overruns,
            "timed_out": self.scheduler.timed_out,
        }
        report.simulated_seconds = (self.clock.now() - START).total_seconds()
        report.wall_seconds = wall
        report.faults_injected = dict(sorted(self.injected.items()))
        report.actions = self.tally.as_dict()
        report.remediation = self.incidents.as_dict()
        report.handoff = self.handoff.as_dict(report.remediation)
        report.capacity = self.capacity.as_dict()
        report.budget = self.budget.as_dict()
        report.operator = {
            "killswitch_flips": self.operator.flips,
            "repairs": self.operator.repairs,
        }
        registry = self.app.metrics.registry
        report.store = {
            name: int(registry.get_sample_value(f"jarvis_{name}_total") or 0)
            for name in ("events_written", "events_spooled")
        }
        triggers = [n for n in self.pages if n.action == "trigger"]
        first = {n.incident: n for n in reversed(triggers)}
        report.processes = self.processes.as_dict() if self.processes.active else {}
        report.notifications = {
            "pages": len({n.incident for n in triggers}),
            "page_notices": len(triggers),
            "resolves": sum(1 for n in self.pages if n.action == "resolve"),
            "by_cause": dict(sorted(Counter(first[i].cause for i in first).items())),
            "escalations": len(self.tally.escalations),
        }
        if self.replicas is not None:
            report.replicas = self.replicas.as_dict()
        if self.customers is not None:
            report.customers = self.customers.as_dict(self.clock.now(), churn_rules(self.settings))
        report.checks = dict(self.checker.checks)
        report.violations = list(self.checker.violations)
