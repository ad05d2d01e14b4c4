"""The simulated operator: flips the kill switch at random moments and answers escalations.

Driven by the harness (`jarvis.simulation.harness`). Flips go through the real
`KillSwitch` service, so they are recorded exactly as `jarvis killswitch engage`
records them; some happen between ticks, some in the middle of one (right
after the provider applied an action), which is what the kill switch's
read-before-every-apply promise is about. An escalation is answered after a
seeded delay the way a paged human would: repair the cause in the fleet and
reset the resource's retry ledger (recorded as ``retries.reset``, as the CLI does).
A flip or a reset that fails because its store is away is tried again at the
next chance, as a human would.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from jarvis.actuators.sim import SimulatedFleet
from jarvis.loop.admin import retries_reset
from jarvis.loop.killswitch import KillSwitch
from jarvis.simulation.faults import Fault
from jarvis.simulation.provider import SimulatedProvider
from jarvis.store import EventStore, StoreError

ACTOR = "sim-operator"


@dataclass(frozen=True, slots=True)
class _Flip:
    at: datetime
    engage: bool
    mid_tick: bool


class Operator:
    def __init__(
        self,
        *,
        killswitch: KillSwitch,
        store: EventStore,
        provider: SimulatedProvider,
        seed: int,
    ) -> None:
        self._killswitch = killswitch
        self._store = store
        self._provider = provider
        self._fleet: SimulatedFleet = provider.fleet
        self._rng = random.Random(f"{seed}:operator")  # noqa: S311 -- a reproducible simulation
        self._flips: list[_Flip] = []
        self._repairs: dict[str, datetime] = {}
        self._holds = 0
        self.flips = 0
        self.repairs = 0
        self.repaired: set[str] = set()
        """Resources repaired since the harness last looked (it clears this)."""
        provider.after_apply = self._mid_tick

    @property
    def engaged(self) -> bool:
        """Whether this operator holds the switch engaged now."""
        return self._holds > 0

    def rebind(self, *, killswitch: KillSwitch, store: EventStore) -> None:
        """Talk to a restarted daemon's switch and store (its CLI opens them anew)."""
        self._killswitch = killswitch
        self._store = store

    def schedule_killswitch(self, fault: Fault) -> None:
        self._flips.append(_Flip(fault.at, True, fault.mid_tick))
        self._flips.append(_Flip(fault.at + fault.duration, False, fault.mid_tick))
        self._flips.sort(key=lambda flip: flip.at)

    def escalated(self, resource: str, now: datetime) -> None:
        """Someone is paged; they fix the cause 30 to 120 minutes later."""
        if resource not in self._repairs:
            delay = timedelta(minutes=self._rng.uniform(30, 120))
            self._repairs[resource] = now + delay

    async def between_ticks(self, now: datetime, *, include_mid_tick: bool = False) -> None:
        # Twice a tick, and nearly always with nothing scheduled: skip the empty passes.
        if self._flips:
            await self._flip_due(now, mid_tick=include_mid_tick)
        if not self._repairs:
            return
        for resource, due in sorted(self._repairs.items(), key=lambda item: item[1]):
            if due <= now:
                del self._repairs[resource]
                await self._repair(resource, now)

    async def _mid_tick(self) -> None:
        await self._flip_due(self._killswitch.clock.now(), mid_tick=True, only_mid_tick=True)

    async def _flip_due(
        self, now: datetime, *, mid_tick: bool, only_mid_tick: bool = False
    ) -> None:
        remaining: list[_Flip] = []
        for flip in self._flips:
            eligible = flip.mid_tick if only_mid_tick else (mid_tick or not flip.mid_tick)
            if not (flip.at <= now and eligible and await self._flip(flip.engage)):
                remaining.append(flip)
        self._flips = remaining

    async def _flip(self, engage: bool) -> bool:
        """Count one hold more or less and flip on a change; False if the switch is away."""
        # Overlapping holds: the switch is released only when the last one ends.
        holds = self._holds + 1 if engage else max(0, self._holds - 1)
        before, after = self._holds > 0, holds > 0
        if before != after:
            reason = (
                "simulated operator: investigating" if after else "simulated operator: all clear"
            )
            try:
                await self._killswitch.set(engaged=after, actor=ACTOR, reason=reason)
            except StoreError:
                return False
            self._provider.record_flip(engaged=after)
            self.flips += 1
        self._holds = holds
        return True

    async def _repair(self, resource: str, now: datetime) -> None:
        try:
            rows = await self._store.reset_retries(resource)
        except StoreError:
            self._repairs[resource] = now  # the database is away: again at the next chance
            return
        _, _, name = resource.partition("://")
        if name in self._fleet.names:
            self._fleet.repair(name)
        self._store.append([retries_reset(resource, ACTOR, now, rows)])
        await self._store.flush()
        self.repairs += 1
        self.repaired.add(resource)
