"""The leader lease on PostgreSQL: a row with holder, epoch and expiry.

Why a row rather than an advisory lock: an advisory lock belongs to a
connection, and a paused leader (SIGSTOP, a frozen VM) keeps its TCP
connection, so PostgreSQL would keep its lock until TCP keepalive gives up,
minutes later, and nobody could take over. A row expires by time, on the
database's own clock (``now()``), so replicas need no clock agreement; its
epoch rises with every change of holder, which is what fencing
(`jarvis.store.fence`) compares. It also survives connection poolers that
would hand a session lock to another client.

The elector (`jarvis.loop.election`) calls `acquire` while following and
`renew` while leading, every retry period, and `heartbeat` for `jarvis status`.
Each call is one short autocommitted statement.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, delete, exists, func, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from jarvis.store.fence import LOOP_LEASE, SHARD_PREFIX
from jarvis.store.tables import leases, replicas, upsert_into

__all__ = [
    "FORGET_REPLICAS_AFTER",
    "LOOP_LEASE",
    "SHARD_PREFIX",
    "LeaseRow",
    "LeaseStatus",
    "PgLease",
    "ReplicaRow",
    "lease_status",
    "live_replicas",
    "live_shards",
]

ELECTION_LOCK = int.from_bytes(b"jarvisel", "big")
"""The advisory lock every taking of a lease holds (one per database, < 2**63).

See `PgLease._unrivalled`."""

FORGET_REPLICAS_AFTER = timedelta(hours=1)
"""A replica silent this long (it crashed) leaves `jarvis status`; the leader prunes it."""


@dataclass(frozen=True, slots=True)
class LeaseRow:
    name: str
    holder: str
    epoch: int
    acquired_at: datetime
    renewed_at: datetime
    expires_at: datetime
    shards: int | None = None
    """The shard count a shard lease was taken under (None for ``loop``)."""


@dataclass(frozen=True, slots=True)
class ReplicaRow:
    replica_id: str
    host: str
    pid: int
    started_at: datetime
    heartbeat_at: datetime
    leader_epoch: int | None


@dataclass(frozen=True, slots=True)
class LeaseStatus:
    """What `jarvis status` shows: the lease, every replica, and the database's time."""

    now: datetime
    lease: LeaseRow | None
    replicas: tuple[ReplicaRow, ...]
    shards: tuple[LeaseRow, ...] = ()
    """The shard leases (``shard-0`` …), in shard order; empty without shards."""


class PgLease:
    """Lease and heartbeat statements for one replica (``holder``) on one engine."""

    def __init__(
        self,
        engine: AsyncEngine,
        holder: str,
        *,
        duration: float,
        name: str = LOOP_LEASE,
        shards: int | None = None,
    ) -> None:
        if name.startswith(SHARD_PREFIX) and shards is None:
            # Without its count a shard lease would exclude every other shard lease.
            raise ValueError(f"shard lease {name!r} needs the shard count it is taken under")
        self.engine = engine
        self.holder = holder
        self.name = name
        self.shards = shards
        """The shard count a shard lease is taken under (None for ``loop``)."""
        self.duration = timedelta(seconds=duration)
        self._started_at: datetime | None = None

    async def acquire(self) -> int | None:
        """Take the lease if it is free or expired; the new epoch, or None when held."""
        expires = func.now() + self.duration
        statement = upsert_into(leases, "postgresql").values(
            name=self.name,
            holder=self.holder,
            epoch=1,
            acquired_at=func.now(),
            renewed_at=func.now(),
            expires_at=expires,
            shards=self.shards,
        )
        upsert = statement.on_conflict_do_update(
            index_elements=[leases.c.name],
            set_={
                "holder": statement.excluded.holder,
                "epoch": leases.c.epoch + 1,
                "acquired_at": func.now(),
                "renewed_at": func.now(),
                "expires_at": expires,
                "shards": statement.excluded.shards,
            },
            where=leases.c.expires_at <= func.now(),
        ).returning(leases.c.epoch)
        async with self.engine.begin() as connection:
            if not await self._unrivalled(connection):
                return None
            row = (await connection.execute(upsert)).first()
        return None if row is None else int(row[0])

    async def _unrivalled(self, connection: AsyncConnection) -> bool:
        """Whether no lease of another kind or count is live; the lock held to commit.

        The unsharded `loop` lease and the shard leases fence different rows,
        and so do the shard leases of two shard counts (``shard-1`` of two and
        of four hold different resources): a replica under one and a replica
        under the other (a rolling update that turns shards on or changes their
        number, a replica missing the setting, a replica on the Kubernetes
        backend beside sharded ones) would both act on the same resources. So
        no lease is taken (`acquire`, `adopt`) or made live again (`extend`)
        while one of another kind or count is live, decided under one lock so
        two of them cannot both pass.
        """
        await connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ELECTION_LOCK})
        rival = select(
            exists().where(_other_kind(self.name, self.shards), leases.c.expires_at > func.now())
        )
        return not (await connection.execute(rival)).scalar()

    async def renew(self, epoch: int) -> bool:
        """Extend the lease held under ``epoch``; False once it expired or changed hands."""
        statement = (
            update(leases)
            .where(*self._held(epoch), leases.c.expires_at > func.now())
            .values(renewed_at=func.now(), expires_at=func.now() + self.duration)
            .returning(leases.c.epoch)
        )
        async with self.engine.begin() as connection:
            return (await connection.execute(statement)).first() is not None

    async def release(self, epoch: int) -> None:
        """End the lease now (a clean stop), so a follower need not wait for it to expire."""
        statement = update(leases).where(*self._held(epoch)).values(expires_at=func.now())
        async with self.engine.begin() as connection:
            await connection.execute(statement)

    async def current_epoch(self) -> int:
        """The lease row's epoch (0 before any holder): where an outside election counts from."""
        query = select(leases.c.epoch).where(leases.c.name == self.name)
        async with self.engine.connect() as connection:
            return int((await connection.execute(query)).scalar() or 0)

    async def adopt(self, epoch: int) -> bool:
        """Hold the row under ``epoch``, elected elsewhere (a Kubernetes Lease); False if stale
        or beside a live lease of another kind or count.

        Whoever holds the row is replaced, expired or not: the election already
        happened, and from this commit on every fenced write of an older epoch
        fails. Only a higher epoch than the row's is taken, so a candidate that
        won an older term and woke late (paused between winning and this write)
        cannot take the row back. The outside election knows nothing of the
        other leases (the shard leases of replicas on this backend), so the same
        exclusions as `acquire` apply.
        """
        expires = func.now() + self.duration
        values = {
            "holder": self.holder,
            "epoch": epoch,
            "acquired_at": func.now(),
            "renewed_at": func.now(),
            "expires_at": expires,
            "shards": self.shards,
        }
        statement = upsert_into(leases, "postgresql").values(name=self.name, **values)
        upsert = statement.on_conflict_do_update(
            index_elements=[leases.c.name], set_=values, where=leases.c.epoch < epoch
        ).returning(leases.c.epoch)
        async with self.engine.begin() as connection:
            if not await self._unrivalled(connection):
                return False
            return (await connection.execute(upsert)).first() is not None

    async def extend(self, epoch: int) -> bool:
        """Move the expiry of the row held under ``epoch`` (renewed elsewhere); False if not ours.

        Unlike `renew`, an expired row is extended too: the outside election
        says the term goes on, and no one else can hold the row meanwhile
        without a higher epoch (`adopt`). But a lease of another kind or count
        may have been taken while it was expired, so the exclusions of
        `acquire` apply here too.
        """
        statement = (
            update(leases)
            .where(*self._held(epoch))
            .values(renewed_at=func.now(), expires_at=func.now() + self.duration)
            .returning(leases.c.epoch)
        )
        async with self.engine.begin() as connection:
            if not await self._unrivalled(connection):
                return False
            return (await connection.execute(statement)).first() is not None

    async def heartbeat(self, leader_epoch: int | None, *, prune: bool | None = None) -> None:
        """Record that this replica is alive (and whether it leads) for `jarvis status`.

        ``prune`` (default: when it leads) also deletes the rows of replicas
        silent for `FORGET_REPLICAS_AFTER`. With shards no replica names a
        leader epoch, so a replica holding any shard prunes instead.
        """
        statement = upsert_into(replicas, "postgresql").values(
            replica_id=self.holder,
            host=socket.gethostname(),
            pid=os.getpid(),
            started_at=func.now(),
            heartbeat_at=func.now(),
            leader_epoch=leader_epoch,
        )
        statement = statement.on_conflict_do_update(
            index_elements=[replicas.c.replica_id],
            set_={"heartbeat_at": func.now(), "leader_epoch": leader_epoch},
        )
        async with self.engine.begin() as connection:
            await connection.execute(statement)
            if leader_epoch is not None if prune is None else prune:
                await connection.execute(
                    delete(replicas).where(
                        replicas.c.heartbeat_at < func.now() - FORGET_REPLICAS_AFTER
                    )
                )

    async def leave(self) -> None:
        """Forget this replica's heartbeat row (a clean stop)."""
        async with self.engine.begin() as connection:
            await connection.execute(delete(replicas).where(replicas.c.replica_id == self.holder))

    def _held(self, epoch: int) -> tuple[ColumnElement[bool], ...]:
        return (leases.c.name == self.name, leases.c.holder == self.holder, leases.c.epoch == epoch)


async def lease_status(engine: AsyncEngine, name: str = LOOP_LEASE) -> LeaseStatus:
    """The lease row, the shard leases, every replica's heartbeat and the database's time."""
    async with engine.connect() as connection:
        now = (await connection.execute(select(func.now()))).scalar_one()
        lease = (await connection.execute(select(leases).where(leases.c.name == name))).first()
        found = await connection.execute(
            select(leases).where(leases.c.name.like(f"{SHARD_PREFIX}%"))
        )
        shards = sorted((LeaseRow(**row._asdict()) for row in found), key=_shard_index)
        rows = await connection.execute(select(replicas).order_by(replicas.c.replica_id))
        return LeaseStatus(
            now=now,
            lease=None if lease is None else LeaseRow(**lease._asdict()),
            replicas=tuple(ReplicaRow(**row._asdict()) for row in rows),
            shards=tuple(shards),
        )


def _other_kind(name: str, shards: int | None) -> ColumnElement[bool]:
    """The leases that fence the same resources as lease ``name`` through other rows: for
    a shard lease, the ``loop`` lease and the shard leases of another count (or of
    none recorded: taken by a replica older than the count's column)."""
    shard = leases.c.name.like(f"{SHARD_PREFIX}%")
    if not name.startswith(SHARD_PREFIX):
        return shard
    other_count = or_(leases.c.shards.is_(None), leases.c.shards != shards)
    return or_(leases.c.name == LOOP_LEASE, and_(shard, other_count))


def _shard_index(row: LeaseRow) -> int:
    """``shard-10`` after ``shard-9``: numeric order, not the string's."""
    tail = row.name.removeprefix(SHARD_PREFIX)
    return int(tail) if tail.isdigit() else -1


async def live_replicas(engine: AsyncEngine, within: float) -> int:
    """Replicas whose heartbeat is younger than ``within`` seconds, on the database's clock.

    What a shard's fair share is reckoned from (`jarvis.loop.shards`): a replica
    that died stops counting once its heartbeat is older than a lease.
    """
    query = (
        select(func.count())
        .select_from(replicas)
        .where(replicas.c.heartbeat_at > func.now() - timedelta(seconds=within))
    )
    async with engine.connect() as connection:
        return int((await connection.execute(query)).scalar_one())


async def live_shards(engine: AsyncEngine, shards: int) -> tuple[datetime, frozenset[str] | None]:
    """The database's time, and the shard leases of ``shards`` a holder keeps live now.

    What `jarvis.loop.shards` reads to tell the shards nobody holds: a row
    missing or expired fences none of this count's resources. None instead of
    the names while a lease of another kind or count is live (a rolling update
    of ``loop.shards``): no lease of this count can be taken then, and the
    replicas holding that one act on the fleet.
    """
    live = leases.c.expires_at > func.now()
    rival = exists().where(_other_kind(f"{SHARD_PREFIX}0", shards), live)
    query = select(leases.c.name).where(
        leases.c.name.like(f"{SHARD_PREFIX}%"), leases.c.shards == shards, live
    )
    async with engine.connect() as connection:
        # One transaction: now() is the same instant in both statements.
        now, rivalled = (await connection.execute(select(func.now(), rival))).one()
        if rivalled:
            return now, None
        names = (await connection.execute(query)).scalars().all()
    return now, frozenset(names)
