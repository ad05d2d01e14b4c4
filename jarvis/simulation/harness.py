"""The simulation harness: days of autonomous operation in virtual time, checked every tick.

Called by `jarvis simulate` (`jarvis.cli.simulate`), the seed-sweep tests and
the benchmarks. It builds the real app through the composition root
(`jarvis.app.build_app`: the real reconciler, guard, kill switch and event
store, with whatever policies `build_policies` returns) on a `VirtualClock`,
a `SimulatedProvider` and the simulated LLM platform (`jarvis.simulation.llm`,
whose routes and budget the run gets when the configuration has none), and
runs the real `jarvis.loop.scheduler.Scheduler` on it, with its pacing, tick
timeout and overrun count. The run is the scheduler's `TickHooks`: faults from
the seeded plan and the simulated operator strike before a tick; after it, the
operator's mid-tick actions and the invariant checker, which reads what the
store recorded and what the provider witnessed. The run ends at the end time or
the first violation. Its id is derived from the seed: same seed, same run.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from jarvis.actuators.sim import SimulatedFleet
from jarvis.app import App, build_app
from jarvis.config import Settings, load_settings
from jarvis.loop.clock import VirtualClock
from jarvis.loop.scheduler import Scheduler, TickResult
from jarvis.policies.base import Policy
from jarvis.simulation.faults import ALL_FAULTS, Fault, FaultKind, plan_faults
from jarvis.simulation.invariants import InvariantChecker, Rules
from jarvis.simulation.llm import SimulatedLlm
from jarvis.simulation.llm_actuators import llm_actuators
from jarvis.simulation.llm_scenario import sim_llm_settings
from jarvis.simulation.operator import Operator
from jarvis.simulation.provider import SimulatedProvider
from jarvis.simulation.report import SimulationReport
from jarvis.simulation.tracking import Budget, Capacity, Incidents, Tally
from jarvis.store import EventStore, MemoryBackend, MemoryKillSwitch, StoreError
from jarvis.store.memory import DEFAULT_RETAIN

START = datetime.fromisoformat("2026-01-05T08:00:00+00:00")
"""A Monday morning; a 30-day run crosses a month end."""
_SERVICE_FAULTS = {FaultKind.CRASH, FaultKind.BAD_DEPLOY, FaultKind.NEVER_RECOVERS, FaultKind.SPIKE}
_DOWNTIME = {FaultKind.OUTAGE, FaultKind.DATABASE_OUTAGE, FaultKind.REDIS_OUTAGE}
"""Faults that take something away until a moment, overlapping ones extending it."""
_EVENT_PAGE = 100_000

ProgressCallback = Callable[[float, float], None]
"""Called after each tick with (simulated seconds done, simulated seconds in all)."""

#: Scaling and rollback rules for the simulated fleet, used unless the
#: configuration already enables those policies (they join the run once the
#: composition root builds them).
SIM_SCALING: dict[str, Any] = {
    "enabled": True,
    "rules": [
        {"match": "sim://*", "min_replicas": 1, "max_replicas": 20, "target_cpu_utilization": 70}
    ],
}
SIM_ROLLBACK: dict[str, Any] = {"enabled": True, "match": ["sim://*"]}


@dataclass(frozen=True, slots=True)
class SimulationConfig:
    seed: int = 1
    days: float = 1.0
    services: int = 50
    faults: tuple[FaultKind, ...] = ALL_FAULTS
    intensity: float = 1.0
    """Multiplies every fault rate: short CI runs see as many faults as long ones."""
    database_url: str | None = None
    """None: the in-memory store (fast; the default). A URL: that SQLite or PostgreSQL
    database, migrated if needed, so the run also exercises the SQL store."""


def simulation_settings(
    config_path: str | Path | None = None, *, spool_path: Path, **overrides: Any
) -> Settings:
    """The configuration's policies and guards, on a private store and the simulated fleet only.

    Redis is left out on purpose: a simulation must never touch a real kill
    switch (it runs on an in-memory one). The store is chosen by
    `SimulationConfig.database_url`; ``database_url`` may still be overridden
    here for callers that build an app from these settings themselves.
    """
    base = load_settings(config_path)
    extra: dict[str, Any] = {
        "spool_path": spool_path,
        "redis_url": None,
        "dry_run": False,
    }
    if not base.scaling.enabled:
        extra["scaling"] = SIM_SCALING
    if not base.rollback.enabled:
        extra["rollback"] = SIM_ROLLBACK
    extra.update(sim_llm_settings(base))
    extra.update(overrides)
    return load_settings(config_path, **extra)


def rules_from(settings: Settings) -> Rules:
    return Rules(
        allow=tuple(
            (entry.provider, entry.resources, frozenset(entry.actions))
            for entry in settings.allowlist
        ),
        max_actions_per_tick=settings.bounds.max_actions_per_tick,
        max_replicas=settings.bounds.max_replicas,
        max_attempts=settings.retry.max_attempts,
        retry_window=timedelta(seconds=settings.retry.window_seconds),
        max_traffic_shift=settings.bounds.max_traffic_shift,
    )


async def run_simulation(
    settings: Settings,
    config: SimulationConfig,
    *,
    policies: Sequence[Policy] | None = None,
    progress: ProgressCallback | None = None,
    rules: Rules | None = None,
    clock: VirtualClock | None = None,
) -> SimulationReport:
    """Run the simulation to its end or its first violation, and report.

    ``policies`` default to what the composition root builds from ``settings``;
    ``rules`` (what the invariants are checked against) default to the
    settings' allow-list, bounds and retry budget. ``clock`` (at `START`) lets
    a test's policy spend virtual time, as a slow one spends real time.
    """
    clock = clock or VirtualClock(START)
    fleet = SimulatedFleet(seed=config.seed, services=config.services, script=False, start=START)
    provider = SimulatedProvider(fleet, clock, seed=config.seed)
    llm = SimulatedLlm.from_settings(settings, seed=config.seed, start=START)
    run_id = f"sim{config.seed}"
    # The kill switch stands in for Redis: a simulation never touches a real one.
    switch = MemoryKillSwitch()
    database: MemoryBackend | None = None
    if config.database_url is None:
        # A tick writes about one event per service at most (the first tick's
        # resource.changed); the checker must read them before they are trimmed.
        database = MemoryBackend(retain=max(DEFAULT_RETAIN, 10 * config.services))
        store = await EventStore.in_memory(spool_path=settings.spool_path, backend=database)
    else:
        store = await EventStore.connect(
            config.database_url, spool_path=settings.spool_path, auto_migrate=True
        )
    app = await build_app(
        settings,
        clock=clock,
        actuators=[provider, *llm_actuators(settings, llm, clock, provider)],
        policies=policies,
        run_id=run_id,
        store=store,
        switch=switch,
    )
    try:
        run = _Run(
            app=app,
            progress=progress,
            clock=clock,
            provider=provider,
            llm=llm,
            settings=settings,
            config=config,
            rules=rules or rules_from(settings),
            database=database,
            switch=switch,
        )
        report = SimulationReport(
            seed=config.seed,
            days=config.days,
            services=config.services,
            faults=[kind.value for kind in config.faults],
            policies=[policy.name for policy in app.reconciler.policies],
            run_id=run_id,
            database=app.store.url,
        )
        await run.run(report)
        return report
    finally:
        await app.aclose()


class _Run:
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
    ) -> None:
        self.app = app
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
        )
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
        self.tally = Tally()
        self.incidents = Incidents()
        self.capacity = Capacity()
        self.budget = Budget(
            settings.cost.monthly_budget_usd, unmanaged=llm.baseline_month_to_date_usd
        )
        self.injected: dict[str, int] = {}
        self.surges: list[tuple[datetime, str]] = []
        self.down_until: dict[FaultKind, datetime] = {}
        self.last_event_id = 0
        self.held_back = False  # at the end, events waited in the spool: check them once more

    async def run(self, report: SimulationReport) -> None:
        wall = time.perf_counter()
        await self.scheduler.run()
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
        if result.error is not None:
            raise result.error  # the daemon would go on; a simulation must fail on a bug
        await self.operator.between_ticks(self.clock.now(), include_mid_tick=True)
        tick = result.report
        await self._check(None if tick is None else tick.tick_id)
        if tick is not None:
            self.budget.observe(tick.snapshot.resources, tick.started_at)
        if self.progress is not None:
            total = (self.end - START).total_seconds()
            self.progress(min(total, (self.clock.now() - START).total_seconds()), total)
        if not self.checker.ok:
            self._bring_back()
            return False
        return True

    def _bring_back(self) -> None:
        """Give back what is down before the scheduler's last flush, which replays the spool."""
        for kind in list(self.down_until):
            self._set_down(kind, down=False)
        self.down_until.clear()
        self.held_back = self.app.store.spooled > 0

    async def _inject(self, now: datetime) -> None:
        while self.faults and self.faults[0].at <= now:
            fault = self.faults.pop(0)
            if self._apply_fault(fault, now):
                self.injected[fault.kind.value] = self.injected.get(fault.kind.value, 0) + 1
        for until, name in [s for s in self.surges if s[0] <= now]:
            self.fleet.surge(name, 1.0)
            self.surges.remove((until, name))
        for kind, until in list(self.down_until.items()):
            if now >= until:
                del self.down_until[kind]
                self._set_down(kind, down=False)
        await self.operator.between_ticks(now)

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
        self.checker.feed_calls(self.provider.drain())
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
            events = await self.app.store.events(after_id=self.last_event_id, limit=_EVENT_PAGE)
        except StoreError:
            return False
        if events and events[-1].id is not None:
            self.last_event_id = events[-1].id
        self.checker.feed_events(events)
        now = self.clock.now()
        for resource in self.tally.feed(events):
            self.operator.escalated(resource, now)
        self.budget.feed(events)
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
        report.checks = dict(self.checker.checks)
        report.violations = list(self.checker.violations)
