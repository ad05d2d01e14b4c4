"""The simulated provider's actuator: the `Actuator` the reconcile loop drives by default.

Built by the composition root when no real provider is configured (and by the
simulation harness), around a `SimulatedFleet` and the loop's clock. It owns
``sim://`` resources. Observing advances the fleet to the clock's ``now``, so
the same code runs in real and virtual time.
"""

from __future__ import annotations

from datetime import datetime

import anyio.lowlevel

from jarvis.actuators.base import Scope
from jarvis.actuators.sim.fleet import SimulatedFleet
from jarvis.actuators.sim.service import PROVIDER
from jarvis.model import Action, ActionKind, Clock, Outcome, ResourceState


class SimulatedActuator:
    """Observes and changes a `SimulatedFleet`; implements `jarvis.actuators.base.Actuator`."""

    provider = PROVIDER
    in_process = True
    action_kinds = frozenset(
        {ActionKind.SCALE, ActionKind.RESTART, ActionKind.ROLLBACK, ActionKind.DEPLOY}
    )

    def __init__(self, fleet: SimulatedFleet, clock: Clock, *, name: str = "simulated") -> None:
        self._fleet = fleet
        self._clock = clock
        self.name = name

    @classmethod
    def create(
        cls,
        clock: Clock,
        *,
        seed: int,
        services: int = 6,
        script: bool = True,
        fail_rate: float = 0.0,
        start: datetime | None = None,
        name: str = "simulated",
    ) -> SimulatedActuator:
        """Build a fresh fleet starting at ``start`` (default: the clock's now) and wrap it."""
        fleet = SimulatedFleet(
            seed=seed,
            services=services,
            script=script,
            fail_rate=fail_rate,
            start=clock.now() if start is None else start,
        )
        return cls(fleet, clock, name=name)

    @property
    def fleet(self) -> SimulatedFleet:
        """The fleet behind this actuator, for the harness's fault hooks."""
        return self._fleet

    async def observe(self, scope: Scope | None = None) -> list[ResourceState]:
        # A checkpoint keeps the call cancellable like a real provider's.
        await anyio.lowlevel.checkpoint()
        return self._fleet.observe(self._clock.now(), scope)

    async def apply(self, action: Action, key: str) -> Outcome:
        await anyio.lowlevel.checkpoint()
        return self._fleet.apply(action, key)

    async def aclose(self) -> None:
        """Nothing to release: the fleet lives in memory."""
