"""The simulated LLM platform's actuators: what the reconciler reads and changes it through.

Built by the harness (`jarvis.simulation.harness`) through `llm_actuators`, as
the composition root would build the real ones from the same settings:

- `SimulatedRouting` (provider ``route``, owns SET_WEIGHTS) in place of
  `jarvis.actuators.llm.routing`. Its writes go through the simulated provider's
  API faults and witness log (`SimulatedProvider.call`), so the invariant
  checker orders them against the operator's kill-switch flips like any
  other apply, and knows the weights each write started from.
- `SimulatedUsage` (provider ``cost``, observe-only) in place of
  `jarvis.actuators.llm.usage`.

Both advance the platform to the clock's now before reading or writing, so
usage accrues every tick at the weights that carried it.
"""

from __future__ import annotations

from collections.abc import Sequence

from jarvis.actuators.base import Scope
from jarvis.config import Settings
from jarvis.model import Action, ActionKind, Clock, Outcome, ResourceState
from jarvis.simulation.llm import SimulatedLlm
from jarvis.simulation.provider import SimulatedProvider


class SimulatedRouting:
    """``route://<name>`` over the platform; SET_WEIGHTS through the provider's faulty API."""

    provider = "route"
    name = "simulated-routing"
    in_process = True
    action_kinds = frozenset({ActionKind.SET_WEIGHTS})

    def __init__(
        self, platform: SimulatedLlm, clock: Clock, *, api: SimulatedProvider | None = None
    ) -> None:
        self._platform = platform
        self._clock = clock
        self._api = api
        self._unseeded = frozenset(platform.route_names)

    async def observe(self, _scope: Scope | None = None) -> Sequence[ResourceState]:
        now = self._clock.now()
        self._platform.advance(now)
        # The real actuator reports seeded=true on the tick that wrote the hash.
        seeded, self._unseeded = self._unseeded, frozenset()
        return self._platform.route_states(now, seeded=seeded)

    async def apply(self, action: Action, key: str) -> Outcome:
        now = self._clock.now()
        # Usage until now accrues at the weights that carried it.
        self._platform.advance(now)

        def write(action: Action) -> Outcome:
            return self._platform.set_weights(action, now)

        if self._api is None:
            return write(action)
        before = self._platform.weights(action.target.name)
        return await self._api.call(action, key, write, weights_before=before)

    async def aclose(self) -> None:
        """Nothing to release: the platform lives in memory."""


class SimulatedUsage:
    """``cost://llm`` over the platform; observe-only, like the `llm_usage` reader."""

    provider = "cost"
    name = "simulated-llm-usage"
    in_process = True

    def __init__(self, platform: SimulatedLlm, clock: Clock) -> None:
        self._platform = platform
        self._clock = clock

    async def observe(self, _scope: Scope | None = None) -> Sequence[ResourceState]:
        now = self._clock.now()
        self._platform.advance(now)
        return [self._platform.usage_state(now)]

    async def aclose(self) -> None:
        """Nothing to release."""


def llm_actuators(
    settings: Settings, platform: SimulatedLlm, clock: Clock, api: SimulatedProvider
) -> list[SimulatedRouting | SimulatedUsage]:
    """The actuators the configuration asks for: routing when enabled, usage when cost is."""
    built: list[SimulatedRouting | SimulatedUsage] = []
    if settings.routing.enabled:
        built.append(SimulatedRouting(platform, clock, api=api))
    if settings.cost.enabled:
        built.append(SimulatedUsage(platform, clock))
    return built
