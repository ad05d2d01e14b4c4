"""The composition root: builds actuators, policies, the guard, the store and the
reconciler from settings. The only place that knows every concrete class.

The CLI, the simulation and the end-to-end tests call `build_app`; nothing else
constructs these objects, and there are no singletons or registration on import.
Cloud SDKs are imported here lazily, only for the providers that are configured,
so start-up stays fast on the embedded default.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from jarvis.actuators.base import Actuator
from jarvis.config import Settings
from jarvis.loop.clock import WallClock
from jarvis.loop.killswitch import KillSwitch
from jarvis.loop.reconciler import Reconciler
from jarvis.model import ActionKind, Clock
from jarvis.policies.base import Policy
from jarvis.safety import (
    AllowList,
    AllowRule,
    Bounds,
    Guard,
    RetryBudget,
    ScaleBounds,
    WeightBounds,
)
from jarvis.store import DbKillSwitch, EventStore, KillSwitchBackend
from jarvis.telemetry.metrics import Metrics


@dataclass
class App:
    settings: Settings
    clock: Clock
    store: EventStore
    killswitch: KillSwitch
    reconciler: Reconciler
    metrics: Metrics
    actuators: list[Actuator] = field(default_factory=list)

    async def aclose(self) -> None:
        for actuator in self.actuators:
            await actuator.aclose()
        await self.killswitch.backend.aclose()
        await self.store.aclose()


async def open_store(settings: Settings, *, auto_migrate: bool | None = None) -> EventStore:
    return await EventStore.connect(
        settings.database_url, spool_path=settings.spool_path, auto_migrate=auto_migrate
    )


def killswitch_backend(settings: Settings, store: EventStore) -> KillSwitchBackend:
    if settings.redis_url:
        from jarvis.store.redis_killswitch import RedisKillSwitch

        return RedisKillSwitch(settings.redis_url)
    return DbKillSwitch(store.engine)


def build_guard(settings: Settings) -> Guard:
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
            },
        ),
        retry=RetryBudget(
            max_attempts=settings.retry.max_attempts,
            window=timedelta(seconds=settings.retry.window_seconds),
            backoff_ticks=tuple(settings.retry.backoff_ticks),
            interval=timedelta(seconds=settings.loop.interval),
        ),
    )


def build_actuators(settings: Settings, clock: Clock) -> list[Actuator]:
    actuators: list[Actuator] = []
    if settings.simulated_enabled:
        from jarvis.actuators.sim import SimulatedActuator, SimulatedFleet

        sim = settings.simulated
        fleet = SimulatedFleet(
            seed=sim.seed,
            services=sim.services,
            script=sim.script,
            fail_rate=sim.fail_rate,
            start=clock.now(),
        )
        actuators.append(SimulatedActuator(fleet, clock))
    if settings.aws is not None:
        from jarvis.actuators.aws.ecs import aws_actuators

        actuators.extend(aws_actuators(settings.aws, clock=clock))
    if settings.kubernetes is not None:
        from jarvis.actuators.kubernetes.actuator import KubernetesActuator

        actuators.append(KubernetesActuator.from_settings(settings.kubernetes, clock=clock))
    if settings.cloudrun is not None:
        from jarvis.actuators.cloudrun.actuator import CloudRunActuator

        actuators.append(CloudRunActuator.from_settings(settings.cloudrun, clock=clock))
    if settings.routing.enabled:
        from jarvis.actuators.llm.routing import RoutingActuator

        actuators.append(
            RoutingActuator.from_settings(
                settings.routing, clock=clock, redis_url=settings.redis_url
            )
        )
    if settings.cost.enabled:
        from jarvis.actuators.llm.usage import LlmUsageActuator

        actuators.append(
            LlmUsageActuator.from_settings(
                settings.cost, clock=clock, database_url=settings.database_url
            )
        )
    return actuators


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
    return policies


def history_size(settings: Settings) -> int:
    """Snapshots to keep: enough to cover the scaling stabilization window."""
    needed = 0
    if settings.scaling.enabled:
        needed = math.ceil(settings.scaling.stabilization_seconds / settings.loop.interval) + 2
    return max(settings.loop.history_snapshots, needed)


async def build_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    actuators: Sequence[Actuator] | None = None,
    policies: Sequence[Policy] | None = None,
    metrics: Metrics | None = None,
    run_id: str | None = None,
    auto_migrate: bool | None = None,
    store: EventStore | None = None,
    switch: KillSwitchBackend | None = None,
) -> App:
    """Open the store, build everything, and start the reconciler (orphans closed).

    ``store`` and ``switch`` replace the ones the settings name (the simulation
    passes in-memory ones); the app closes them with everything else.
    """
    clock = clock or WallClock()
    metrics = metrics or Metrics()
    store = store or await open_store(settings, auto_migrate=auto_migrate)
    try:
        killswitch = KillSwitch(switch or killswitch_backend(settings, store), store, clock)
        built = list(actuators) if actuators is not None else build_actuators(settings, clock)
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
        )
        await reconciler.start()
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
    )
