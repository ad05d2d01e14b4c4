"""Leader election: which replica runs the loop, and handing it over safely.

`Elector` drives a lease (`jarvis.store.lease.PgLease`) with
controller-runtime's timings: a follower tries to acquire every retry period;
the leader renews every retry period and stops believing it leads once it has
not renewed for the renew deadline, which is shorter than the lease, so its
own view ends before anyone else's can begin. Its view is measured on the
monotonic clock, which keeps counting while the process is paused (SIGSTOP),
so a leader that wakes late knows at once that it no longer leads.

Belief is not enough (a pause can land between a check and a write), so the
epoch the elector holds becomes the store's fence (`jarvis.store.fence`):
every intent and retry-ledger write proves it in its own transaction.

`Leadership` is the scheduler's gate (`jarvis.loop.scheduler`): before each
tick it asks whether this replica leads; on a new epoch it has the reconciler
take the lead (reload, close the orphans of runs that stopped, fence the
store); on losing it, step down. Followers therefore observe nothing.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Protocol

import anyio
import structlog

from jarvis.loop.reconciler import Reconciler
from jarvis.store.errors import describe
from jarvis.store.fence import Fence
from jarvis.telemetry.metrics import Metrics

__all__ = ["Elector", "Leadership", "LeaseBackend"]

log = structlog.get_logger("jarvis.election")


class LeaseBackend(Protocol):
    """The lease statements the elector needs (`jarvis.store.lease.PgLease`)."""

    name: str
    holder: str

    async def acquire(self) -> int | None: ...

    async def renew(self, epoch: int) -> bool: ...

    async def release(self, epoch: int) -> None: ...

    async def heartbeat(self, leader_epoch: int | None) -> None: ...

    async def leave(self) -> None: ...


class Elector:
    """Acquires, renews and gives up one lease; see the module docstring."""

    def __init__(
        self,
        lease: LeaseBackend,
        metrics: Metrics,
        *,
        renew_deadline: float,
        retry_period: float,
        rng: random.Random | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        explain: Callable[[BaseException], str] = describe,
    ) -> None:
        self.lease = lease
        self.explain = explain
        """A failed lease statement in one line, for the log, in the store's words (`describe`
        by default; the daemon and the one-shots pass `EventStore.explain`, which names the
        database), never SQLAlchemy's text with its SQL and link."""
        self.monotonic = monotonic
        """The clock deadlines are measured on; the simulation passes its virtual one."""
        self.metrics = metrics
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._epoch: int | None = None
        self._confirmed = 0.0
        """Monotonic time at which the last successful acquire or renew was sent."""
        self.last_error: Exception | None = None
        """Why the last round failed (None when it answered): a one-shot command names it."""
        self.on_elected: Callable[[], None] | None = None
        """Called on winning the lease (the daemon wakes its scheduler: no wait for a boundary)."""
        self.held_at_last_answer = False
        """Whether the database's last answer (to an acquire or a renewal) left this replica
        holding the lease. Unlike `epoch`, it outlives the deadline while the database is
        away: who tells a store outage goes by it (`jarvis.loop.duties`)."""

    @property
    def replica(self) -> str:
        return self.lease.holder

    @property
    def epoch(self) -> int | None:
        """The epoch this replica leads under, or None; False as soon as the deadline passes."""
        if self._epoch is not None and self.monotonic() - self._confirmed >= self.renew_deadline:
            self.lose("renew deadline passed")
        return self._epoch

    def fence(self) -> Fence | None:
        epoch = self.epoch
        return None if epoch is None else Fence(self.lease.name, self.lease.holder, epoch)

    def lose(self, why: str) -> None:
        """Stop leading now (a failed renew, a fenced write refused, a passed deadline)."""
        if self._epoch is None:
            return
        log.warning("stepped down", replica=self.replica, epoch=self._epoch, why=why)
        self._epoch = None
        self.metrics.leader.set(0)
        self.metrics.leader_transitions.labels(direction="stepped_down").inc()

    async def run(self) -> None:
        """Try or renew every retry period (jittered up to 20 %), until cancelled."""
        while True:
            await self.step()
            await anyio.sleep(self.retry_period * (1 + 0.2 * self.rng.random()))

    async def step(self) -> None:
        """One round: acquire or renew, then heartbeat. A database error is logged, not raised."""
        sent = self.monotonic()
        self.last_error = None
        try:
            with anyio.fail_after(self.renew_deadline):
                if self.epoch is None:
                    await self._try_acquire(sent)
                elif await self.lease.renew(self._epoch or 0):
                    self._confirmed = sent
                else:
                    self.lose("renew refused: the lease expired or changed hands")
                self.held_at_last_answer = self._epoch is not None
                await self.lease.heartbeat(self.epoch)
        except Exception as exc:  # noqa: BLE001 - the next round retries; the deadline decides
            self.last_error = exc
            log.warning("lease round failed", replica=self.replica, error=self.explain(exc))
        self.metrics.leader.set(0 if self.epoch is None else 1)

    async def _try_acquire(self, sent: float) -> None:
        epoch = await self.lease.acquire()
        if epoch is None:
            return
        self._epoch, self._confirmed = epoch, sent
        self.metrics.leader.set(1)
        self.metrics.leader_transitions.labels(direction="elected").inc()
        log.info("elected leader", replica=self.replica, epoch=epoch)
        if self.on_elected is not None:
            self.on_elected()

    async def resign(self) -> None:
        """On a clean stop: end the lease now and drop the heartbeat row (best effort)."""
        epoch, self._epoch = self._epoch, None
        self.held_at_last_answer = False
        self.metrics.leader.set(0)
        with anyio.move_on_after(self.renew_deadline):
            try:
                if epoch is not None:
                    await self.lease.release(epoch)
                await self.lease.leave()
            except Exception as exc:  # noqa: BLE001 - the lease expires by itself anyway
                log.warning("could not release the lease", error=self.explain(exc))


class Leadership:
    """The scheduler's gate: the loop runs only while this replica leads."""

    def __init__(self, elector: Elector, reconciler: Reconciler) -> None:
        self.elector = elector
        self.reconciler = reconciler
        self._led: int | None = None

    @property
    def leading(self) -> bool:
        return self.elector.epoch is not None

    async def ready(self) -> bool:
        """Whether to tick now; takes the lead or steps down on a change of epoch."""
        fence = self.elector.fence()
        if fence is None:
            if self._led is not None:
                await self.step_down()
            return False
        if fence.epoch != self._led:
            try:
                await self.reconciler.take_lead(fence)
            except Exception as exc:  # noqa: BLE001 - try again next tick, still not acting
                why = self.elector.explain(exc)
                log.warning("could not take the lead", epoch=fence.epoch, error=why)
                await self.lost(f"taking the lead failed: {why}")
                return False
            self._led = fence.epoch
        return True

    async def lost(self, why: str) -> None:
        """A fenced write was refused: this replica no longer leads."""
        self.elector.lose(why)
        await self.step_down()

    async def step_down(self) -> None:
        self._led = None
        await self.reconciler.step_down()
