"""The simulated provider's API: the actuator the simulated reconciler talks to.

Built by the harness (`jarvis.simulation.harness`) around a `SimulatedFleet`.
It plays the part of a cloud API in front of the fleet: throttling, 5xx-like
errors and timeouts come from here (the fleet's own `set_api_failing` is the
full outage), each drawn from its own seeded stream. It is also the witness:
every apply it receives, every kill-switch flip the simulated operator makes,
and every moment the kill switch's store goes away or comes back, goes into
`calls` in the order it happened, for the invariant checker
to compare with what the event store recorded. The simulated LLM routes
(`jarvis.simulation.llm`) send their weight writes through `call` as well, so
one log orders every apply of the run against the operator's flips.

Idempotency keys: the provider remembers the key of every call whose change
took effect; a call with such a key answers "already applied" before it
reaches the witness log or the backend, so a replayed action is never
witnessed (or counted) as a second change; recovery asks for the same record
(`confirm_applied`) to close an orphan whose change took effect as applied.

A timeout is the SDK's: the call returns TIMED_OUT, and whether the change
took effect is a coin toss, as with a real provider. Hanging for real would
tie the run to wall-clock deadlines and make it non-deterministic.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime

import anyio.lowlevel

from jarvis.actuators.base import ActuatorError, Scope
from jarvis.actuators.sim import SimulatedFleet
from jarvis.model import Action, ActionKind, Clock, Outcome, Replicas, ResourceRef, ResourceState
from jarvis.simulation.faults import FaultKind
from jarvis.simulation.invariant_records import ProviderCall

ApplyHook = Callable[[], Awaitable[None]]
Backend = Callable[[Action], Outcome]
"""What a call reaches when no fault strikes: the fleet's apply, or the LLM routes'."""


class SimulatedProvider:
    """An `Actuator` over a fleet, with API faults and a witness log."""

    provider = "sim"
    name = "simulated"
    in_process = True
    action_kinds = frozenset(
        {ActionKind.SCALE, ActionKind.RESTART, ActionKind.ROLLBACK, ActionKind.DEPLOY}
    )

    def __init__(self, fleet: SimulatedFleet, clock: Clock, *, seed: int) -> None:
        self.fleet = fleet
        self._clock = clock
        self._rng = random.Random(f"{seed}:api")  # noqa: S311 -- a reproducible simulation
        self._seq = itertools.count()
        self._episodes: dict[FaultKind, tuple[datetime, float]] = {}
        self.calls: list[ProviderCall] = []
        self._applied: dict[str, str] = {}
        """Each target's last key whose change took effect: what a real provider keeps
        (the ECS tag, the Kubernetes and Cloud Run annotation), one per resource."""
        self.after_apply: ApplyHook | None = None
        """Called after each apply, for the operator's mid-tick kill-switch flips."""

    def start_episode(self, kind: FaultKind, until: datetime, rate: float) -> None:
        """From now until ``until``, calls fail with ``kind`` at probability ``rate``."""
        self._episodes[kind] = (until, rate)

    def _strikes(self, kind: FaultKind, now: datetime) -> bool:
        episode = self._episodes.get(kind)
        if episode is None:
            return False
        until, rate = episode
        if now >= until:
            del self._episodes[kind]
            return False
        return self._rng.random() < rate

    def record_flip(self, *, engaged: bool) -> None:
        self._witness("engage" if engaged else "release")

    def record_switch_store(self, *, readable: bool) -> None:
        """The kill switch's store went away or came back (a fail-safe period starts or ends)."""
        self._witness("switch_up" if readable else "switch_down")

    def record_switch_wiped(self) -> None:
        """The kill switch's Redis restarted empty: its record is gone until the next flip."""
        self._witness("switch_wiped")

    def _witness(self, what: str) -> None:
        self.calls.append(ProviderCall(next(self._seq), self._clock.now(), what))

    def drain(self) -> list[ProviderCall]:
        calls, self.calls = self.calls, []
        return calls

    async def observe(self, scope: Scope | None = None) -> list[ResourceState]:
        await anyio.lowlevel.checkpoint_if_cancelled()
        now = self._clock.now()
        if self._strikes(FaultKind.THROTTLING, now):
            raise ActuatorError("Rate exceeded", code="Throttling")
        return self.fleet.observe(now, scope)

    async def apply(self, action: Action, key: str) -> Outcome:
        try:
            before = self.fleet.state(action.target.name).replicas
        except KeyError:
            before = None
        return await self.call(action, key, self.fleet.apply, before=before)

    async def call(
        self,
        action: Action,
        key: str,
        backend: Backend,
        *,
        before: Replicas | None = None,
        weights_before: Mapping[str, float] | None = None,
        dark: frozenset[str] = frozenset(),
    ) -> Outcome:
        """Witness ``action``, then hand it to ``backend`` through this API's faults.

        A ``key`` whose change was the target's last to take effect is answered at once.
        """
        target = str(action.target)
        if self._applied.get(target) == key:
            await anyio.lowlevel.checkpoint_if_cancelled()
            return Outcome.success(f"already applied (key {key})")
        now = self._clock.now()
        self.calls.append(
            ProviderCall(next(self._seq), now, "apply", action, before, weights_before, dark)
        )

        def once(action: Action) -> Outcome:
            outcome = backend(action)
            if outcome.ok:
                self._applied[target] = key
            return outcome

        outcome = self._call(action, now, once)
        if self.after_apply is not None:
            await self.after_apply()
        return outcome

    def _call(self, action: Action, now: datetime, backend: Backend) -> Outcome:
        if self._strikes(FaultKind.THROTTLING, now):
            return Outcome.failure("Rate exceeded", code="Throttling")
        if self._strikes(FaultKind.API_ERRORS, now):
            return Outcome.failure("InternalError: try again later", code="InternalError")
        if self._strikes(FaultKind.TIMEOUTS, now):
            if self._rng.random() < 0.5:
                backend(action)
            return Outcome.timed_out("read timeout: the change may or may not have taken effect")
        return backend(action)

    async def confirm_applied(
        self,
        target: ResourceRef,
        kind: str,  # noqa: ARG002 - the key is of one action id, which names its kind
        key: str,
    ) -> str | None:
        """`ConfirmsKeys` for recovery: the target's last change that took effect had ``key``
        (one that timed out but took effect included, as a tag written with it would be)."""
        await anyio.lowlevel.checkpoint_if_cancelled()
        if self._applied.get(str(target)) != key:
            return None
        return f"the simulated provider's last change to {target} had key {key}"

    async def aclose(self) -> None:
        """Nothing to release: the fleet lives in memory."""
