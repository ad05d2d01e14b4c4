"""The lease protocol of `jarvis.store.lease` and `jarvis.store.fence`, in memory.

For the simulation (`jarvis.simulation.replicas`), which runs several replicas
in one process on a virtual clock: `MemoryLeases` is the lease table (the
database's side, with the database's clock), `MemoryLease` one replica's
statements on it (the elector's `LeaseBackend`), and `MemoryLeases.check` the
fence a `MemoryBackend` write runs before storing anything. The rules are the
PostgreSQL statements' own, one for one: acquire only a free or expired lease
and raise its epoch; renew only one's own unexpired epoch; release by
expiring it now; a fenced write only under the current, unexpired epoch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from jarvis.store.errors import LeaseLostError
from jarvis.store.fence import LOOP_LEASE, Fence

__all__ = ["MemoryLease", "MemoryLeases"]


@dataclass(slots=True)
class _Row:
    holder: str
    epoch: int
    expires_at: float


class MemoryLeases:
    """The lease table and its clock (seconds, like `time.monotonic`: the database's time)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self._rows: dict[str, _Row] = {}
        self.heartbeats: dict[str, tuple[float, int | None]] = {}
        """Each replica's last heartbeat and the epoch it led under (`jarvis status`'s view)."""
        self.refused = 0
        """Fenced writes refused: a replica wrote believing in an epoch no longer current."""

    def current(self, name: str = LOOP_LEASE) -> tuple[str, int] | None:
        """The holder and epoch of an unexpired lease, or None."""
        row = self._rows.get(name)
        if row is None or row.expires_at <= self.clock():
            return None
        return row.holder, row.epoch

    def epoch(self, name: str = LOOP_LEASE) -> int:
        """The lease's latest epoch, expired or not (0 before anyone held it)."""
        row = self._rows.get(name)
        return 0 if row is None else row.epoch

    def check(self, fence: Fence) -> None:
        """`jarvis.store.fence.check_fence`: raise `LeaseLostError` unless ``fence`` is current."""
        if self.current(fence.lease) != (fence.holder, fence.epoch):
            self.refused += 1
            raise LeaseLostError(
                f"lease {fence.lease!r}: epoch {fence.epoch} of {fence.holder} is no longer current"
            )

    def acquire(self, name: str, holder: str, duration: float) -> int | None:
        now = self.clock()
        row = self._rows.get(name)
        if row is not None and row.expires_at > now:
            return None
        epoch = 1 if row is None else row.epoch + 1
        self._rows[name] = _Row(holder, epoch, now + duration)
        return epoch

    def renew(self, name: str, holder: str, epoch: int, duration: float) -> bool:
        now = self.clock()
        row = self._rows.get(name)
        if row is None or (row.holder, row.epoch) != (holder, epoch) or row.expires_at <= now:
            return False
        row.expires_at = now + duration
        return True

    def release(self, name: str, holder: str, epoch: int) -> None:
        row = self._rows.get(name)
        if row is not None and (row.holder, row.epoch) == (holder, epoch):
            row.expires_at = min(row.expires_at, self.clock())


class MemoryLease:
    """One replica's lease statements on a `MemoryLeases` table (an elector's `LeaseBackend`).

    ``reachable`` says whether this replica can reach the database now: a
    partitioned replica's statements fail as a dropped connection would.
    """

    def __init__(
        self,
        table: MemoryLeases,
        holder: str,
        *,
        duration: float,
        name: str = LOOP_LEASE,
        reachable: Callable[[], bool] = lambda: True,
    ) -> None:
        self.table = table
        self.holder = holder
        self.name = name
        self.duration = duration
        self.reachable = reachable

    def _check(self) -> None:
        if not self.reachable():
            raise ConnectionRefusedError(f"{self.holder} cannot reach the database (simulated)")

    async def acquire(self) -> int | None:
        self._check()
        return self.table.acquire(self.name, self.holder, self.duration)

    async def renew(self, epoch: int) -> bool:
        self._check()
        return self.table.renew(self.name, self.holder, epoch, self.duration)

    async def release(self, epoch: int) -> None:
        self._check()
        self.table.release(self.name, self.holder, epoch)

    async def heartbeat(self, leader_epoch: int | None) -> None:
        self._check()
        self.table.heartbeats[self.holder] = (self.table.clock(), leader_epoch)

    async def leave(self) -> None:
        self._check()
        self.table.heartbeats.pop(self.holder, None)
