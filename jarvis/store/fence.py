"""Fencing: a write that acts as the leader first proves, in its own transaction,
that the leader's epoch is still current.

Leader election alone does not make a paused leader safe (client-go's
leaderelection package warns as much): a process stopped by SIGSTOP, a long
GC or a partition wakes believing it still leads. `check_fence` runs as the
first statement of the transaction that inserts an intent or updates the
retry ledger (`SqlBackend.write`). It reads the lease row ``FOR SHARE``: a
takeover (an UPDATE of that row) either committed before, and the check finds
another epoch and raises `LeaseLostError`, or waits until this transaction
commits, so no write of an old epoch can land after a new epoch began. The
lease's expiry is checked on the database's clock too, so a leader never
writes past its lease even while nobody has taken it over yet.

Kept to one function over one statement, so any write path (the event
writer, a journal replay) can add it to its transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from jarvis.store.errors import LeaseLostError

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

__all__ = ["LOOP_LEASE", "SHARD_PREFIX", "Fence", "Fences", "check_fence", "each"]

LOOP_LEASE = "loop"
"""The one lease today: who runs the reconcile loop."""
SHARD_PREFIX = "shard-"
"""Shard leases are named ``shard-0`` … ``shard-N-1`` (`jarvis.loop.shards.shard_name`)."""


@dataclass(frozen=True, slots=True)
class Fence:
    """Who may write as the leader of ``lease``: ``holder`` under ``epoch``."""

    lease: str
    holder: str
    epoch: int


Fences = Fence | tuple[Fence, ...]
"""One lease's fence, or several: a replica holding several shards (`jarvis.loop.shards`)
writes a batch under all of them, each checked in the one transaction."""


def each(fences: Fences | None) -> tuple[Fence, ...]:
    """The fences to check, in lease-name order (so two writers lock rows in one order)."""
    if fences is None:
        return ()
    if isinstance(fences, Fence):
        return (fences,)
    return tuple(sorted(fences, key=lambda fence: fence.lease))


async def check_fence(connection: AsyncConnection, fence: Fence) -> None:
    """Raise `LeaseLostError` unless ``fence`` holds the unexpired lease; lock it shared."""
    from sqlalchemy import func, select  # noqa: PLC0415 - only writers that act load SQLAlchemy

    from jarvis.store.tables import leases  # noqa: PLC0415

    query = (
        select(leases.c.epoch)
        .where(
            leases.c.name == fence.lease,
            leases.c.holder == fence.holder,
            leases.c.epoch == fence.epoch,
            leases.c.expires_at > func.now(),
        )
        .with_for_update(read=True)
    )
    if (await connection.execute(query)).first() is None:
        raise LeaseLostError(
            f"lease {fence.lease!r}: epoch {fence.epoch} of {fence.holder} is no longer current"
        )
