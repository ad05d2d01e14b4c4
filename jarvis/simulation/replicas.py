"""Several replicas in one simulation: leader election, its faults, and fencing, in virtual time.

A run that names a replica fault (`jarvis.simulation.faults.REPLICA_FAULTS`)
builds `COUNT` replicas, each a real app from the composition root with its
own reconciler and event store, all on one shared in-memory database (each
through its own `ReplicaLink`, so one can be partitioned) and one simulated
cloud. Each replica runs the real `jarvis.loop.election.Elector` and
`Leadership` against `MemoryLeases`, the lease table whose statements and
fence check are PostgreSQL's (`jarvis.store.lease`, `jarvis.store.fence`)
one for one, and whose clock, like the database's, is the virtual monotonic
time. The electors measure their renew deadline on that clock too.

`ReplicaSet` is the scheduler's `Gate`. Before each tick it catches the
electors up with the time that passed, one round per retry period (the
controller-runtime timings of ``lease``), then picks the replica that ticks:
the one `Leadership` says leads, or none. Only one scheduler runs, so a tick
is one replica's tick; that is exact here, since the lease lets at most one
believe it leads at any moment. The faults strike the leader:

- ``leader_crash``: it stops (no rounds, no ticks), and restarts as a new
  elector (a new process, following) after the fault's duration;
- ``leader_pause``: it stops for longer than its lease; the pause lands after
  its leadership check, so on waking it ticks once on its old belief, the case
  fencing exists for: its first fenced write must be refused;
- ``replica_partition``: its link to the database is cut for a while.

What this cannot model: a pause between an intent's write and its apply (one
process, one virtual instant per call), which no database fence can stop
either; client-go says as much. `jarvis.simulation.invariant_epochs` checks the
record: nothing started or applied under a replaced epoch.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog

from jarvis.app import App
from jarvis.config import Settings
from jarvis.loop.clock import VirtualClock
from jarvis.loop.election import Elector, Leadership
from jarvis.loop.scheduler import Scheduler
from jarvis.simulation.faults import FaultKind
from jarvis.simulation.replica_link import ReplicaLink
from jarvis.store import EventStore, MemoryBackend
from jarvis.store.memory_lease import MemoryLease, MemoryLeases

log = structlog.get_logger("jarvis.simulation.replicas")

COUNT = 3
"""Replicas in a run with replica faults: one leads, two can take over."""

AppFactory = Callable[[EventStore, int], Awaitable[App]]
"""Builds replica ``i``'s app on its store."""


@dataclass
class Replica:
    name: str
    app: App
    link: ReplicaLink
    elector: Elector
    leadership: Leadership
    down_until: float | None = None
    """Crashed: restarts (a new process) at this monotonic time."""
    paused_until: float | None = None
    woke: bool = False
    """Woke from a pause believing it leads: its next tick runs unchecked."""
    cut_until: float | None = None


class ReplicaSet:
    """The replicas, their lease table and the virtual time their electors have reached."""

    def __init__(
        self,
        settings: Settings,
        clock: VirtualClock,
        database: MemoryBackend,
        *,
        fencing: bool = True,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.mono = clock.monotonic()
        """The electors' and the lease table's time; it catches up with the clock in rounds."""
        self.table = MemoryLeases(lambda: self.mono)
        database.leases = self.table if fencing else None
        self.database = database
        self.members: list[Replica] = []
        self.scheduler: Scheduler | None = None
        self.ticker: Replica | None = None
        self.rounds = 0
        self.elections = 0
        self.stale_ticks = 0
        """Ticks a woken replica ran on its old belief."""
        self.refused_ticks = 0
        """Ticks cut short because a fenced write was refused."""

    @classmethod
    async def build(
        cls,
        settings: Settings,
        clock: VirtualClock,
        database: MemoryBackend,
        make: AppFactory,
        *,
        fencing: bool = True,
    ) -> ReplicaSet:
        replicas = cls(settings, clock, database, fencing=fencing)
        for index in range(COUNT):
            link = ReplicaLink(database, f"replica-{index}")
            spool = settings.spool_path
            if spool is not None and index > 0:
                spool = spool.with_name(f"{spool.name}.replica-{index}")
            store = await EventStore.in_memory(spool_path=spool, backend=database)
            store.backend = link  # the same store, reaching the database through its link
            app = await make(store, index)
            elector, leadership = replicas._elect(link.replica, app, link)
            replicas.members.append(Replica(link.replica, app, link, elector, leadership))
        return replicas

    def _elect(self, name: str, app: App, link: ReplicaLink) -> tuple[Elector, Leadership]:
        lease = self.settings.lease
        backend = MemoryLease(
            self.table, name, duration=lease.duration, reachable=lambda: not link.cut
        )
        elector = Elector(
            backend,
            app.metrics,
            renew_deadline=lease.renew_deadline,
            retry_period=lease.retry_period,
            monotonic=lambda: self.mono,
        )
        return elector, Leadership(elector, app.reconciler)

    @property
    def refused_writes(self) -> int:
        return self.table.refused

    # -- the scheduler's gate ------------------------------------------------

    @property
    def leading(self) -> bool:
        return self.ticker is not None

    async def ready(self) -> bool:
        """Catch the electors up with the clock, then choose who ticks (or nobody)."""
        await self._catch_up()
        self.ticker = None
        woken = next((r for r in self.members if r.woke), None)
        if woken is not None:
            woken.woke = False
            self.stale_ticks += 1
            self._tick_as(woken)
            return True
        for replica in self._running():
            if await replica.leadership.ready() and self.ticker is None:
                self._tick_as(replica)
        return self.ticker is not None

    async def lost(self, why: str) -> None:
        self.refused_ticks += 1
        if self.ticker is not None:
            await self.ticker.leadership.lost(why)

    def _tick_as(self, replica: Replica) -> None:
        self.ticker = replica
        if self.scheduler is not None:
            self.scheduler.reconciler = replica.app.reconciler

    # -- time ------------------------------------------------------------------

    async def _catch_up(self) -> None:
        target = self.clock.monotonic()
        retry = self.settings.lease.retry_period
        while self.mono + retry < target:
            self.mono += retry
            await self._round()
        self.mono = max(self.mono, target)
        await self._round()

    def _running(self) -> list[Replica]:
        return [r for r in self.members if r.down_until is None and r.paused_until is None]

    async def _round(self) -> None:
        """Every running replica's elector steps once, starting with a different one each round."""
        self.rounds += 1
        for replica in self.members:
            self._wake(replica)
        running = self._running()
        start = self.rounds % len(self.members)
        for replica in [*running[start:], *running[:start]]:
            if replica.woke:
                continue  # frozen between its check and its write until its tick
            had = replica.elector.epoch
            await replica.elector.step()
            if had is None and replica.elector.epoch is not None:
                self.elections += 1

    def _wake(self, replica: Replica) -> None:
        now = self.mono
        if replica.down_until is not None and replica.down_until <= now:
            replica.down_until = None
            replica.app.reconciler.act_as(None)  # a new process remembers no lease
            replica.elector, replica.leadership = self._elect(
                replica.name, replica.app, replica.link
            )
        if replica.paused_until is not None and replica.paused_until <= now:
            replica.paused_until = None
            replica.woke = replica.app.reconciler.store.fence is not None
        if replica.cut_until is not None and replica.cut_until <= now:
            replica.cut_until = None
            replica.link.cut = False

    # -- faults ----------------------------------------------------------------

    def strike(self, kind: FaultKind, seconds: float) -> bool:
        """Strike the leader with ``kind`` for ``seconds``; False when nobody leads."""
        leader = next((r for r in self._running() if r.elector.epoch is not None), None)
        if leader is None:
            return False
        until = self.clock.monotonic() + seconds
        log.info("replica fault", kind=kind.value, replica=leader.name, seconds=seconds)
        if kind is FaultKind.LEADER_CRASH:
            leader.down_until = until
        elif kind is FaultKind.LEADER_PAUSE:
            leader.paused_until = until
        else:
            leader.cut_until = until
            leader.link.cut = True
        return True

    def heal(self) -> None:
        """At the end of the run: every replica back and reachable."""
        for replica in self.members:
            replica.cut_until = None
            replica.link.cut = False

    @property
    def spooled(self) -> int:
        return sum(replica.app.store.spooled for replica in self.members)

    async def settle(self) -> None:
        """Flush what every replica still buffers, as each would on a clean stop."""
        for replica in self.members:
            if replica.down_until is None and replica.paused_until is None:
                await replica.app.reconciler.flush()

    def as_dict(self) -> dict[str, int]:
        return {
            "replicas": len(self.members),
            "elections": self.elections,
            "epoch": self.table.epoch(),
            "stale_ticks": self.stale_ticks,
            "refused_writes": self.refused_writes,
            "refused_ticks": self.refused_ticks,
        }

    async def aclose(self) -> None:
        """Close the replicas the harness does not (every one but the first)."""
        for replica in self.members[1:]:
            await replica.app.store.aclose()
