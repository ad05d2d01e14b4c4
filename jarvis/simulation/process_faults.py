"""The process faults: Jarvis killed in a database outage, Redis emptied, a second process.

Called by the run (`jarvis.simulation.run`) when one of `PROCESS_FAULTS`
strikes (issue 11, "What the month must show"). Each plays what an operator's
machine would do to the real daemon, through the same pieces a real start
uses, and leaves a mark the invariant checker (`jarvis.simulation.invariants`)
can judge from the record and the witness:

* ``crash_in_outage``: the database goes away; midway the process is killed
  (`App.aclose`, which flushes nothing: whatever was buffered is lost, the
  spool file stays) and a supervisor starts it again every loop interval.
  Each start is the real one (`build_app`: replay the spool, load the ledger,
  close orphans), and fails while the database is away because the spool
  holds what it has not taken; the run's virtual time passes meanwhile. After
  the start, the checker asks the store for intents still open (``restart``).
* ``redis_restart``: the kill switch's record is lost while the switch is
  engaged (deferred to the next engage if it is not); the switch must then be
  judged by its last recorded flip, and the witness marks the window.
* ``second_process``: a one-shot ``jarvis plan`` (read-only store) or
  ``jarvis tick --dry-run`` is built beside the daemon, on the same database
  and Redis but with its own view of the cloud, as `jarvis.cli.ticks` builds
  it. Whatever its provider receives, and any intent or outcome it records,
  was done by a process that does not hold the loop; ``plan`` must leave the
  event count as it found it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from jarvis.app import App, build_app
from jarvis.config import Settings
from jarvis.loop.clock import VirtualClock
from jarvis.policies.base import Policy
from jarvis.simulation.faults import Fault, FaultKind
from jarvis.simulation.invariants import InvariantChecker
from jarvis.simulation.provider import SimulatedProvider
from jarvis.store import EventStore, MemoryBackend, MemoryKillSwitch, StoreError

MAX_RESTART_ATTEMPTS = 10_000
"""A supervisor gives up after this many failed starts (a bug, not an outage)."""


@dataclass
class ProcessFaults:
    """What the process faults need of the run, and what they did (for the report)."""

    settings: Settings
    clock: VirtualClock
    database: MemoryBackend | None
    """The in-memory event database; None on a real one (then only Redis restarts apply)."""
    switch: MemoryKillSwitch
    provider: SimulatedProvider
    checker: InvariantChecker
    policies: Sequence[Policy] | None
    seed: int
    engages_planned: bool
    """Whether the operator ever engages the switch (else a Redis restart strikes at once)."""
    crashes: list[datetime] = field(default_factory=list)
    """When planned kills land, each inside its own database outage."""
    restarts: int = 0
    failed_starts: int = 0
    one_shots: dict[str, int] = field(default_factory=dict)
    refused_one_shots: int = 0
    redis_wipes: int = 0
    pending_wipe: bool = False
    _launches: int = 0

    async def strike(
        self,
        fault: Fault,
        now: datetime,
        *,
        engaged: bool,
        database_down: Callable[[datetime, datetime], None],
    ) -> bool:
        """Strike a process fault; False when it does not apply to this run (or waits)."""
        kind = fault.kind
        if kind is FaultKind.REDIS_RESTART:
            return self.wipe_redis(engaged)
        if self.database is None:
            return False  # a real database can be neither taken away nor shared from here
        if kind is FaultKind.SECOND_PROCESS:
            await self.one_shot(fault.target or "plan")
            return True
        # A crash in an outage: the database goes away now, the kill lands inside the outage.
        database_down(now, now + fault.duration)
        self.crashes.append(now + fault.duration * fault.magnitude)
        self.crashes.sort()
        return True

    def crashes_due(self, now: datetime) -> int:
        """How many planned kills are due (and forget them)."""
        if not self.crashes:
            return 0
        due = [at for at in self.crashes if at <= now]
        self.crashes = self.crashes[len(due) :]
        return len(due)

    async def check_restart(self, store: EventStore) -> None:
        """After a restart, once the record is settled: hand the open intents to the checker."""
        if not self.checker.processes.awaiting_restart:
            return
        try:
            intents = await store.open_intents()
        except StoreError:
            return  # the database went away again: at the next settled tick
        self.checker.processes.open_after_restart(intents)

    async def restart(self, app: App, give_back: Callable[[datetime], None]) -> App:
        """Kill ``app`` and start the daemon again once it can; the new app.

        ``give_back`` ends the downtimes due at a moment, so the database
        returns while the supervisor keeps trying.
        """
        if self.database is None:
            raise RuntimeError("a restart in an outage needs the in-memory event database")
        await app.aclose()
        self.restarts += 1
        for _ in range(MAX_RESTART_ATTEMPTS):
            give_back(self.clock.now())
            store = await EventStore.in_memory(
                spool_path=self.settings.spool_path, backend=self.database
            )
            try:
                restarted = await build_app(
                    self.settings,
                    clock=self.clock,
                    actuators=app.actuators,
                    policies=self.policies,
                    metrics=app.metrics,
                    run_id=f"sim{self.seed}r{self.restarts}",
                    store=store,
                    switch=self.switch,
                )
            except StoreError:
                self.failed_starts += 1
                self.clock.advance(self.settings.loop.interval)
                continue
            self.checker.processes.awaiting_restart = True
            return restarted
        raise RuntimeError(f"the simulated daemon did not start in {MAX_RESTART_ATTEMPTS} tries")

    def wipe_redis(self, engaged: bool) -> bool:
        """Empty the switch's Redis if it is engaged (or never will be); False: later."""
        if not engaged and self.engages_planned:
            self.pending_wipe = True
            return False
        self.pending_wipe = False
        self.switch.restart_empty()
        self.provider.record_switch_wiped()
        self.redis_wipes += 1
        return True

    async def one_shot(self, command: str) -> None:
        """Run ``jarvis plan`` or ``jarvis tick --dry-run`` beside the daemon, and judge it."""
        if self.database is None:
            raise RuntimeError("a second process needs the in-memory event database")
        self._launches += 1
        run_id = f"sim{self.seed}-{command}{self._launches}"
        self.checker.processes.one_shot_runs.add(run_id)
        plan = command == "plan"
        store = EventStore(self.database, read_only=True) if plan else EventStore(self.database)
        # Its own API client on the same cloud: what it sends is its own witness.
        provider = SimulatedProvider(self.provider.fleet, self.clock, seed=self.seed)
        try:
            before = await store.count_events()
            app = await build_app(
                self.settings,
                clock=self.clock,
                actuators=[provider],
                policies=self.policies,
                run_id=run_id,
                store=store,
                switch=self.switch,  # MemoryKillSwitch.aclose releases nothing
                recover_orphans=False,
            )
            try:
                await app.reconciler.tick(dry_run=True)
            finally:
                await app.aclose()
            after = await store.count_events()
        except StoreError:
            # The database is away: the command exits 1 and does nothing.
            self.refused_one_shots += 1
            return
        self.one_shots[command] = self.one_shots.get(command, 0) + 1
        self.checker.processes.one_shot_done(
            run_id, provider.drain(), wrote=after - before if plan else 0
        )

    @property
    def active(self) -> bool:
        """Whether any process fault struck (only then does the report show them)."""
        return bool(self.restarts or self.redis_wipes or self.one_shots or self.refused_one_shots)

    def as_dict(self) -> dict[str, object]:
        return {
            "restarts": self.restarts,
            "failed_starts": self.failed_starts,
            "redis_restarts": self.redis_wipes,
            "one_shots": dict(sorted(self.one_shots.items())),
            "one_shots_refused": self.refused_one_shots,
        }
