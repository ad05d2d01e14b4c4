"""An in-memory actuator for loop tests: it implements the `Actuator` protocol
with scripted states and apply hooks, so a test can fail, stall or flip the
kill switch from inside an apply without patching any Jarvis module; and an
in-memory metric source (`MetricSource`) that answers, fails or hangs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import anyio

from jarvis.actuators.base import ActuatorError, MetricReading, Scope
from jarvis.model import (
    Action,
    ActionKind,
    Clock,
    Health,
    Outcome,
    Replicas,
    ResourceRef,
    ResourceState,
    Scale,
)
from jarvis.policies.base import Evaluation

ApplyHook = Callable[[Action], Awaitable[Outcome | None]]


@dataclass
class FakeService:
    name: str
    health: Health = Health.HEALTHY
    desired: int = 2
    version: str = "v1"


@dataclass
class FakeActuator:
    """Resources under ``provider://name``; records every applied action."""

    clock: Clock
    services: dict[str, FakeService] = field(default_factory=dict)
    provider: str = "sim"
    name: str = "fake"
    action_kinds: frozenset[str] = frozenset(ActionKind)
    applied: list[Action] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    """The idempotency key of each applied action, in order."""
    on_apply: ApplyHook | None = None
    on_observe: Callable[[], Awaitable[None]] | None = None
    observe_error: str | None = None
    restart_heals: bool = True

    def add(self, *names: str, health: Health = Health.HEALTHY) -> FakeActuator:
        for n in names:
            self.services[n] = FakeService(n, health)
        return self

    async def observe(self, _scope: Scope | None = None) -> Sequence[ResourceState]:
        if self.on_observe is not None:
            await self.on_observe()
        if self.observe_error is not None:
            raise ActuatorError(self.observe_error, code="Boom")
        now = self.clock.now()
        return [
            ResourceState(
                ref=ResourceRef(self.provider, s.name),
                health=s.health,
                observed_at=now,
                replicas=Replicas(s.desired, s.desired if s.health is Health.HEALTHY else 0),
                version=s.version,
                detail="" if s.health is Health.HEALTHY else "crashed",
            )
            for s in self.services.values()
        ]

    async def apply(self, action: Action, key: str) -> Outcome:
        self.applied.append(action)
        self.keys.append(key)
        if self.on_apply is not None:
            result = await self.on_apply(action)
            if result is not None:
                return result
        service = self.services[action.target.name]
        if action.kind == ActionKind.RESTART and self.restart_heals:
            service.health = Health.HEALTHY
        if isinstance(action.params, Scale) and action.params.replicas is not None:
            service.desired = action.params.replicas
        return Outcome.success("done")

    async def aclose(self) -> None:
        return None


@dataclass
class FakeSource:
    """A metric source of ``metrics`` for ``services``: it answers ``values`` (with
    ``problems``), or fails as an unreachable server does, or never answers."""

    values: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    services: Collection[str] = ()
    metrics: frozenset[str] = frozenset({"requests_per_minute", "error_rate"})
    problems: tuple[str, ...] = ()
    fail: bool = False
    hang: bool = False
    name: str = "prom"

    async def read(self) -> MetricReading:
        if self.hang:
            await anyio.sleep_forever()
        if self.fail:
            raise ActuatorError("connection refused", code="unreachable")
        return MetricReading(values=self.values, problems=self.problems)

    async def aclose(self) -> None:
        return None


class ProposeEach:
    """A policy proposing a fixed list of actions every tick."""

    def __init__(self, actions: Sequence[Action], name: str = "scripted") -> None:
        self.actions = tuple(actions)
        self.name = name

    def evaluate(self, snapshot: object, history: object, now: datetime) -> Evaluation:
        return Evaluation(actions=self.actions)
