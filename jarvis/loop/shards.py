"""Shards: the fleet split across replicas, each shard with its own lease and epoch.

With ``loop.shards = N`` (N > 1) on PostgreSQL, a resource belongs to shard
``shard_of(uri, N)``, a stable hash of its URI (the same on every replica and
every restart). Each shard is a lease row (``shard-0`` … ``shard-N-1``) driven
by its own `jarvis.loop.election.Elector`, so each has the one-leader
protocol, timings and epoch of the unsharded loop. `ShardElector` decides how
many to hold: a fair share, ``ceil(N / live replicas)``, live meaning a
heartbeat younger than one lease. Short of it, a replica tries free or expired
shards, starting at an offset of its own so replicas do not all contend for
shard 0; over it (a replica joined), it releases the surplus, but only between
ticks (`ShardLeadership.ready`), so no tick writes under a shard it gave away.
A replica that dies keeps its shards until their leases expire; the others
count one replica fewer once its heartbeat is a lease old and take them.
Every round each replica also reads which shards nobody holds and exports
their count and how long the longest has gone so (`ShardElector._watch_unheld`),
which JarvisShardUnheld (deploy/monitoring/alerts.yaml) pages on.

`ShardLeadership` is the scheduler's gate. When the set of shards held
changes, the reconciler takes over under all of their fences: every intent
and ledger write checks each held shard's epoch in its transaction
(`jarvis.store.fence.each`), every event names the replica and each shard's
epoch (``shards`` in the payload), and the actuators observe only the
resources of held shards (`jarvis.actuators.base.Scope`): the costly
per-resource reads are split across the replicas, not repeated by each.
The kill switch, the allow-list and the bounds are read by every replica
from the same configuration and store, so they stay global; the per-tick
bound, the disruption budgets and the fleet breaker count every replica's
intents and failures from the store (`jarvis.loop.peers`).
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Callable, Collection
from datetime import datetime

import anyio
import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from jarvis.loop.election import Elector
from jarvis.loop.reconciler import Reconciler
from jarvis.model import Event
from jarvis.store.errors import describe
from jarvis.store.fence import Fence
from jarvis.store.lease import SHARD_PREFIX, PgLease, live_replicas, live_shards
from jarvis.store.storable import safe_text
from jarvis.telemetry.metrics import Metrics

__all__ = ["ShardElector", "ShardLeadership", "owner", "shard_name", "shard_of"]

log = structlog.get_logger("jarvis.shards")


def shard_of(uri: str, shards: int) -> int:
    """The shard of a resource: a stable hash of its URI (not Python's salted `hash`).

    Hashed as the store records it (`safe_text`), so the URI an intent recorded
    falls in the shard of the resource it names, and a lone surrogate in a name
    is hashed rather than raised.
    """
    digest = hashlib.sha256(safe_text(uri).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % shards


REMEMBERED = 1_000_000
"""URIs `owner` remembers before it starts over (a bound on a fleet that keeps churning)."""


def owner(shards: int, held: Collection[int]) -> Callable[[str], bool]:
    """Whether a URI is in one of the ``held`` shards, remembered per URI.

    Asked for every resource of the fleet every tick (`Scope.keeps`): hashing
    each URI anew was a fifth of the tick of one shard in four at 100,000
    resources (benchmark 12). The answer never changes while the same shards
    are held, and a new predicate is made when they change.
    """
    indices = frozenset(held)
    known: dict[str, bool] = {}

    def owns(uri: str) -> bool:
        found = known.get(uri)
        if found is None:
            if len(known) >= REMEMBERED:
                known.clear()
            found = known[uri] = shard_of(uri, shards) in indices
        return found

    return owns


def shard_name(index: int) -> str:
    return f"{SHARD_PREFIX}{index}"


class _ShardLease(PgLease):
    """A shard's lease: the replica's one heartbeat row is `ShardElector`'s to write."""

    async def heartbeat(self, leader_epoch: int | None, *, prune: bool | None = None) -> None:
        """Written once per round by `ShardElector`, not once per shard."""

    async def leave(self) -> None:
        """Left once by `ShardElector`."""


class ShardElector:
    """Holds a fair share of the shard leases; see the module docstring."""

    def __init__(
        self,
        engine: AsyncEngine,
        holder: str,
        metrics: Metrics,
        *,
        shards: int,
        duration: float,
        renew_deadline: float,
        retry_period: float,
        rng: random.Random | None = None,
        explain: Callable[[BaseException], str] = describe,
    ) -> None:
        self.engine = engine
        self.explain = explain
        """A failed statement in one line, for the log, as the store says it (`Elector.explain`;
        the daemon passes `EventStore.explain`, which names the database)."""
        self.metrics = metrics
        self.shards = shards
        self.duration = duration
        self.retry_period = retry_period
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self.base = PgLease(engine, holder, duration=duration)
        self.electors = [
            Elector(
                _ShardLease(
                    engine, holder, duration=duration, name=shard_name(index), shards=shards
                ),
                metrics,
                renew_deadline=renew_deadline,
                retry_period=retry_period,
                explain=explain,
            )
            for index in range(shards)
        ]
        self.offset = shard_of(holder, shards)
        self.unheld_since: dict[str, datetime] = {}
        """Shard → when this replica first read it without a live holder (database clock)."""
        metrics.lease_duration.set(duration)
        self.surplus: list[Elector] = []
        """Shards to hand over at the next tick boundary (a replica joined)."""
        self.on_elected: Callable[[], None] | None = None

    @property
    def replica(self) -> str:
        return self.base.holder

    def held(self) -> list[Elector]:
        return [elector for elector in self.electors if elector.epoch is not None]

    def fences(self) -> tuple[Fence, ...]:
        return tuple(fence for e in self.electors if (fence := e.fence()) is not None)

    async def run(self) -> None:
        while True:
            await self.step()
            await anyio.sleep(self.retry_period * (1 + 0.2 * self.rng.random()))

    async def step(self) -> None:
        """Renew what is held, then take up to a fair share (or mark the surplus)."""
        for elector in self.held():
            await elector.step()
        try:
            live = await live_replicas(self.engine, within=self.duration)
        except Exception as exc:  # noqa: BLE001 - renewing went on; take nothing new
            log.warning("could not count the replicas", error=self.explain(exc))
            live = 0
        else:
            # The database answered: a shard not held now is not held, as far as it knows.
            for elector in self.electors:
                if elector.epoch is None:
                    elector.held_at_last_answer = False
        held = self.held()
        if live:
            fair = math.ceil(self.shards / max(live, 1))
            if len(held) > fair:
                self.surplus = held[fair:]
            else:
                self.surplus = []
                await self._take(held, fair)
        count = len(self.held())
        self.metrics.shards_held.set(count)
        self.metrics.leader.set(1 if count else 0)
        await self._watch_unheld()
        try:
            with anyio.fail_after(self.duration):
                # No single epoch to name: `jarvis status` shows the replica as alive
                # and its shards from their leases. A replica holding any prunes the
                # long-silent rows, as the leader does without shards.
                await self.base.heartbeat(None, prune=count > 0)
        except Exception as exc:  # noqa: BLE001 - the next round writes it again
            log.warning("heartbeat failed", replica=self.replica, error=self.explain(exc))

    async def _watch_unheld(self) -> None:
        """Count the shards nobody holds and time the longest unheld, for JarvisShardUnheld.

        Timed from when this replica first read each one unheld, not from its
        lease's expiry: a fleet started again after a day down would otherwise
        read every shard as unheld for a day. The alert takes the longest any
        replica has watched. While leases of another count or kind are live (a
        rolling update of ``loop.shards``), their holders act on the fleet and
        none of this count can be taken: none is counted unheld here.
        """
        try:
            now, live = await live_shards(self.engine, self.shards)
        except Exception as exc:  # noqa: BLE001 - the gauges keep the last reading
            log.warning("could not read the shard leases", error=self.explain(exc))
            return
        since = self.unheld_since
        names = (shard_name(i) for i in range(self.shards))
        unheld = [] if live is None else [name for name in names if name not in live]
        self.unheld_since = {name: since.get(name, now) for name in unheld}
        longest = max(((now - t).total_seconds() for t in self.unheld_since.values()), default=0.0)
        self.metrics.shards_unheld.set(len(unheld))
        self.metrics.shards_unheld_seconds.set(longest)

    async def _take(self, held: list[Elector], fair: int) -> None:
        gained = False
        for step in range(self.shards):
            if len(held) >= fair:
                break
            elector = self.electors[(self.offset + step) % self.shards]
            if elector.epoch is not None:
                continue
            await elector.step()
            if elector.fence() is not None:  # a call: the step may have changed the epoch
                held.append(elector)
                gained = True
        if gained and self.on_elected is not None:
            self.on_elected()

    async def hand_over(self) -> None:
        """Release the surplus (between ticks): a follower takes it on its next round."""
        surplus, self.surplus = self.surplus, []
        for elector in surplus:
            epoch = elector.epoch
            if epoch is None:
                continue
            elector.lose("handed over to balance the shards")
            elector.held_at_last_answer = False
            try:
                await elector.lease.release(epoch)
            except Exception as exc:  # noqa: BLE001 - it expires by itself
                log.warning(
                    "could not release a shard", shard=elector.lease.name, error=self.explain(exc)
                )

    async def resign(self) -> None:
        for elector in self.electors:
            await elector.resign()
        with anyio.move_on_after(self.duration):
            try:
                await self.base.leave()
            except Exception as exc:  # noqa: BLE001 - the row is pruned in an hour anyway
                log.warning("could not leave", error=self.explain(exc))


class ShardLeadership:
    """The scheduler's gate with shards: tick while this replica holds any."""

    def __init__(self, elector: ShardElector, reconciler: Reconciler) -> None:
        self.elector = elector
        self.reconciler = reconciler
        self._led: frozenset[Fence] = frozenset()

    @property
    def leading(self) -> bool:
        return bool(self.elector.fences())

    async def ready(self) -> bool:
        await self.elector.hand_over()
        fences = self.elector.fences()
        if not fences:
            if self._led:
                await self.step_down()
            return False
        if frozenset(fences) != self._led:
            shards = self.elector.shards
            owned = {fence.lease for fence in fences}
            epochs = {fence.lease: fence.epoch for fence in fences}
            held = [i for i in range(shards) if shard_name(i) in owned]
            self.reconciler.owns = owner(shards, held)

            def stopped(intent: Event) -> bool:
                name = shard_name(shard_of(intent.resource or "", shards))
                written = intent.payload.get("shards")
                epoch = written.get(name) if isinstance(written, dict) else None
                return name in epochs and isinstance(epoch, int) and epoch < epochs[name]

            try:
                await self.reconciler.take_over(fences, stopped)
            except Exception as exc:  # noqa: BLE001 - try again next tick, still not acting
                await self.lost(f"taking the shards failed: {self.elector.explain(exc)}")
                return False
            self._led = frozenset(fences)
            log.info("ticking shards", replica=self.elector.replica, shards=sorted(owned))
        return True

    async def lost(self, why: str) -> None:
        """A fenced write was refused: some shard is gone; hold none until the next rounds."""
        for elector in self.elector.held():
            elector.lose(why)
        await self.step_down()

    async def step_down(self) -> None:
        self._led = frozenset()
        self.reconciler.owns = lambda _uri: False
        await self.reconciler.step_down()
