"""The simulation harness: days of autonomous operation in virtual time, checked every tick.

Called by `jarvis simulate` (`jarvis.cli.simulate`), the seed-sweep tests and
the benchmarks. It builds the real app through the composition root
(`jarvis.app.build_app`: the real reconciler, guard, kill switch and event
store, with whatever policies `build_policies` returns) on a `VirtualClock`,
a `SimulatedProvider` and the simulated LLM platform (`jarvis.simulation.llm`,
whose routes and budget the run gets when the configuration has none), and
runs the real `jarvis.loop.scheduler.Scheduler` on it, with its pacing, tick
timeout and overrun count. The run is the scheduler's `TickHooks`
(`jarvis.simulation.run`): faults from the seeded plan and the simulated
operator strike before a tick; after it, the operator's mid-tick actions and
the invariant checker, which reads what the store recorded and what the
provider witnessed. The run ends at the end time or the first violation. Its
id is derived from the seed: same seed, same run. Its start, configuration,
settings and rules are `jarvis.simulation.run_config`. A run that names a
replica fault runs three replicas on one in-memory database, and the
scheduler ticks whichever leads (`jarvis.simulation.replicas`). A run that
names ``region_dark`` adds two DNS regions and the failover policy
(`jarvis.simulation.dns`).
"""

from __future__ import annotations

from collections.abc import Sequence

from jarvis.actuators.sim import SimulatedFleet
from jarvis.app import App, build_app
from jarvis.config import Settings
from jarvis.loop.clock import VirtualClock
from jarvis.policies.base import Policy
from jarvis.simulation.customer_actuators import customer_actuators
from jarvis.simulation.customers import SimulatedCustomers
from jarvis.simulation.dns import SimulatedRegions, dns_actuators, with_failover
from jarvis.simulation.faults import PROCESS_FAULTS, REPLICA_FAULTS, FaultKind
from jarvis.simulation.invariant_records import Rules
from jarvis.simulation.llm import SimulatedLlm
from jarvis.simulation.llm_actuators import llm_actuators
from jarvis.simulation.provider import SimulatedProvider
from jarvis.simulation.replicas import ReplicaSet
from jarvis.simulation.report import SimulationReport
from jarvis.simulation.run import SimulationRun
from jarvis.simulation.run_config import START, ProgressCallback, SimulationConfig, rules_from
from jarvis.store import EventStore, MemoryBackend, MemoryKillSwitch
from jarvis.store.memory import DEFAULT_RETAIN


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
    regions: SimulatedRegions | None = None
    if FaultKind.REGION_DARK in config.faults:
        settings = with_failover(settings)
        regions = SimulatedRegions()
    fleet = SimulatedFleet(seed=config.seed, services=config.services, script=False, start=START)
    provider = SimulatedProvider(fleet, clock, seed=config.seed)
    llm = SimulatedLlm.from_settings(settings, seed=config.seed, start=START)
    run_id = f"sim{config.seed}"
    customers: SimulatedCustomers | None = None
    if config.customers:
        if not settings.customers.enabled:
            raise ValueError("simulated customers need simulation_settings(customers=True)")
        customers = SimulatedCustomers.scenario(
            seed=config.seed,
            count=config.customers,
            start=START,
            days=config.days,
            prices=settings.customers.monthly_prices(),
        )
    extra = [] if customers is None else customer_actuators(customers, clock, provider)
    # The kill switch stands in for Redis: a simulation never touches a real one.
    switch = MemoryKillSwitch()
    database: MemoryBackend | None = None
    replicated = bool(REPLICA_FAULTS.intersection(config.faults))
    if replicated and config.database_url is not None:
        raise ValueError("replica faults run on the in-memory database only")
    if replicated and PROCESS_FAULTS.intersection(config.faults):
        raise ValueError("replica faults and process faults do not run together")
    if config.database_url is None:
        # A tick writes about one event per service at most (the first tick's
        # resource.changed); the checker must read them before they are trimmed.
        database = MemoryBackend(retain=max(DEFAULT_RETAIN, 10 * config.services))
        store = await EventStore.in_memory(spool_path=settings.spool_path, backend=database)
    else:
        store = await EventStore.connect(
            config.database_url, spool_path=settings.spool_path, auto_migrate=True
        )

    async def make_app(on: EventStore, index: int) -> App:
        return await build_app(
            settings,
            clock=clock,
            actuators=[
                provider,
                *llm_actuators(settings, llm, clock, provider),
                *dns_actuators(regions, clock, provider),
                *extra,
            ],
            policies=policies,
            run_id=run_id if index == 0 else f"{run_id}-r{index}",
            store=on,
            switch=switch,
        )

    replicas: ReplicaSet | None = None
    if replicated and database is not None:
        await store.aclose()
        replicas = await ReplicaSet.build(
            settings, clock, database, make_app, fencing=config.fencing
        )
        app = replicas.members[0].app
    else:
        app = await make_app(store, 0)
    run: SimulationRun | None = None
    try:
        run = SimulationRun(
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
            replicas=replicas,
            policies=policies,
            regions=regions,
            customers=customers,
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
        # A process fault may have restarted the daemon: close the app running now.
        await (app if run is None else run.app).aclose()
        if replicas is not None:
            await replicas.aclose()
