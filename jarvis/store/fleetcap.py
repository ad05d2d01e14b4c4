"""Fleet-wide caps checked where the intent is written, so replicas cannot overshoot them.

With shards (`jarvis.loop.shards`) every replica runs its own loop, and the
guard's fleet-wide limits (the per-tick bound, fleet-wide disruption budgets)
are pre-checked on the intents it has read from the store. Two replicas that
read at the same instant would each start one more than the limit. So the
loop also stages, with each intent, the `Cap`s that intent must stay under
(`jarvis.loop.fleetcap`), and `check_caps` runs in the transaction that
writes it (`SqlBackend.write`, after the fence): on PostgreSQL it first takes
a transaction-scoped advisory lock on one key per database, so the count
and the insert of every capped intent, fleet-wide, happen one transaction
at a time; the lock goes with the commit. An intent that would exceed a cap
raises `FleetCapError`, which rolls the intent and its ledger row back: the
action is then blocked with the cap's reason, never failed, never charged.
An intent whose outcome says it changed nothing (`jarvis.model.Event.changed_nothing`:
the kill switch withheld it, or its target was gone) counts against no cap, as
in the guard's pre-check (`jarvis.loop.budgets.ChangeLog`); until its outcome
is written it counts.

The cost is one lock and one indexed read per capped intent (benchmark 13,
docs/benchmarks.md). SQLite needs no lock: its writer holds the database's
write lock for the whole transaction, and it has one node anyway.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from jarvis.model import WITHHOLDING, BlockReason, ErrorKind, EventKind, Verdict
from jarvis.store.errors import StoreError

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

__all__ = ["FLEET_CAP_LOCK", "Cap", "FleetCapError", "check_caps", "exceeded"]

FLEET_CAP_LOCK = int.from_bytes(b"jarvisfc", "big")
"""The advisory lock key every capped intent write takes (one per database, < 2**63)."""

_LOCK = "SELECT pg_advisory_xact_lock(:key)"


@dataclass(frozen=True, slots=True)
class Cap:
    """One fleet-wide limit an intent must stay under: at most ``limit`` intents that ``count``.

    ``since``, ``kinds`` and ``provider`` bound the rows read (in SQL); ``counts``
    says of each stored intent read (time, resource URI, action kind) whether it
    counts, with the guard's own window edge and resource glob; ``detail`` words
    the block as the guard would.
    """

    reason: BlockReason
    limit: int
    since: datetime
    counts: Callable[[datetime, str, str], bool]
    detail: Callable[[int], str]
    """The block's detail, given how many intents counted."""
    kinds: frozenset[str] | None = None
    """Only intents of these action kinds can count (None: any): read no others."""
    provider: str | None = None
    """Only intents on this provider's resources can count (None: any): read no others.
    Both only narrow the read; ``counts`` alone decides (the memory backend reads all)."""


class FleetCapError(StoreError):
    """An intent would exceed a fleet-wide cap: it was not written, and is not to be applied.

    Never operational (never spooled): the limit holds later just as now.
    """

    def __init__(self, verdict: Verdict) -> None:
        super().__init__(verdict.detail)
        self.verdict = verdict


def exceeded(cap: Cap, intents: Iterable[tuple[datetime, str, str]]) -> Verdict | None:
    """The block when one more intent would exceed ``cap``, given the stored ``intents``."""
    used = sum(1 for ts, resource, kind in intents if cap.counts(ts, resource, kind))
    return Verdict.block(cap.reason, cap.detail(used)) if used >= cap.limit else None


async def check_caps(connection: AsyncConnection, caps: Sequence[Cap]) -> None:
    """Serialise on the fleet-wide lock, then raise `FleetCapError` if a cap is reached.

    One read per cap, of only the intents it may count: a per-tick window holds
    no more than the bound, a budget's window no more than its kinds' changes.
    """
    if not caps:
        return
    from sqlalchemy import and_, exists, or_, select, text  # noqa: PLC0415 - only writers that act load SQLAlchemy

    from jarvis.store.tables import events  # noqa: PLC0415

    if connection.dialect.name == "postgresql":
        await connection.execute(text(_LOCK), {"key": FLEET_CAP_LOCK})
    outcome = events.alias("outcome")
    error_kind = outcome.c.payload["error_kind"].as_string()
    # As `Event.changed_nothing` reads it: an action.failed that was withheld (a
    # withholding code and no error kind) or whose target was gone.
    unchanged = exists().where(
        outcome.c.action_id == events.c.action_id,
        outcome.c.kind == EventKind.ACTION_FAILED.value,
        or_(
            and_(
                outcome.c.payload["error_code"].as_string().in_(sorted(WITHHOLDING)),
                error_kind.is_(None),
            ),
            error_kind == ErrorKind.GONE.value,
        ),
    )
    for cap in caps:
        query = select(events.c.ts, events.c.resource, events.c.action_kind).where(
            events.c.kind == EventKind.ACTION_STARTED.value, events.c.ts >= cap.since, ~unchanged
        )
        if cap.kinds is not None:
            query = query.where(events.c.action_kind.in_(sorted(cap.kinds)))
        if cap.provider is not None:
            query = query.where(events.c.resource.startswith(f"{cap.provider}://", autoescape=True))
        found = await connection.execute(query)
        verdict = exceeded(cap, ((ts, r or "", k or "") for ts, r, k in found))
        if verdict is not None:
            raise FleetCapError(verdict)
