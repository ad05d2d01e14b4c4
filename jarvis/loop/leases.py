"""The lease backends an `Elector` drives: the PostgreSQL row, or a Kubernetes Lease.

`lease_backend` is what the daemon (`jarvis.cli.daemon`) and a one-shot command
holding the lease (`jarvis.cli.oneshot`) call, so every contender on one
database elects the same way. Both backends fence through the PostgreSQL
lease row (`jarvis.store.fence`); they differ in who decides the holder.

With `KubeLease` a ``coordination.k8s.io/v1`` Lease decides
(`jarvis.actuators.kubernetes.lease.LeaseLock`, client-go's rules), and the
row follows it: a replica that wins the Lease under term T writes the row as
holder under epoch T, taken only if the row's epoch is lower
(`PgLease.adopt`), and each renewal of the Lease moves the row's expiry
(`PgLease.extend`). Both refuse while a lease the Lease cannot see is live
(shard leases of replicas on the row backend), as the row backend's own
acquisition does, so the two backends never both lead. A leader paused past
its Lease wakes to a row that names a higher epoch: its first fenced write
fails and it steps down, exactly as with the row alone. Client-go warns that
its election does not fence; the row's epoch is what does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from sqlalchemy.ext.asyncio import AsyncEngine

from jarvis.config import ConfigError, Settings
from jarvis.loop.election import LeaseBackend
from jarvis.store.lease import LOOP_LEASE, PgLease

if TYPE_CHECKING:
    from jarvis.actuators.kubernetes.lease import LeaseLock as KubernetesLock

__all__ = ["KubeLease", "LeaseLock", "check_lease", "lease_backend", "lease_lock"]


class LeaseLock(Protocol):
    """An outside election (`jarvis.actuators.kubernetes.lease.LeaseLock`)."""

    async def acquire(self, floor: int) -> int | None: ...

    async def renew(self, term: int) -> bool: ...

    async def release(self, term: int) -> None: ...

    def close(self) -> None: ...


class KubeLease:
    """A `LeaseBackend` elected by a Kubernetes Lease and fenced by the row; see above."""

    def __init__(self, lock: LeaseLock, row: PgLease) -> None:
        self.lock = lock
        self.row = row
        self.name = row.name
        self.holder = row.holder

    async def acquire(self) -> int | None:
        term = await self.lock.acquire(await self.row.current_epoch())
        if term is None or not await self.row.adopt(term):
            # A later term holds the row (the next round reads its epoch), or
            # replicas on the row backend hold leases of another kind (shards)
            # that the Lease knows nothing of: not elected until they end.
            return None
        return term

    async def renew(self, epoch: int) -> bool:
        return await self.lock.renew(epoch) and await self.row.extend(epoch)

    async def release(self, epoch: int) -> None:
        await self.lock.release(epoch)
        await self.row.release(epoch)

    async def heartbeat(self, leader_epoch: int | None) -> None:
        await self.row.heartbeat(leader_epoch)

    async def leave(self) -> None:
        """Drop the heartbeat row, then the API client (the elector's last call)."""
        try:
            await self.row.leave()
        finally:
            self.lock.close()


def check_lease(settings: Settings) -> None:
    """ConfigError for a ``[lease]`` the daemon could not elect with, before anything opens.

    `jarvis config check` calls it as the daemon does, so a configuration it
    passes is not one `jarvis run` refuses at start; it reads no file and calls nothing.
    """
    lease = settings.lease
    if lease.backend == "postgresql":
        return
    if not settings.database_url.startswith("postgresql"):
        raise ConfigError(
            f'lease.backend = "{lease.backend}" elects among replicas, and only '
            "PostgreSQL fences them: on SQLite there is one node and no lease"
        )
    if settings.loop.shards > 1:
        raise ConfigError(
            f'lease.backend = "kubernetes" elects one leader; loop.shards = '
            f"{settings.loop.shards} needs a lease per shard: use the postgresql backend"
        )


def lease_lock(settings: Settings, holder: str) -> KubernetesLock:
    """The Kubernetes Lease for ``holder``, on ``[kubernetes]``'s cluster, else the pod's;
    ConfigError when its client cannot be configured (no service account outside a pod)."""
    # The Kubernetes SDK is imported only when this backend is chosen (start-up time).
    from jarvis.actuators.base import ActuatorError  # noqa: PLC0415
    from jarvis.actuators.kubernetes.client import build_api_client  # noqa: PLC0415
    from jarvis.actuators.kubernetes.lease import LeaseLock as KubernetesLock  # noqa: PLC0415
    from jarvis.config.kubernetes import KubernetesSettings  # noqa: PLC0415

    lease = settings.lease
    cluster = settings.kubernetes or KubernetesSettings(in_cluster=True)
    try:
        api = build_api_client(cluster)
    except ActuatorError as exc:
        raise ConfigError(f'lease.backend = "kubernetes": {exc}') from exc
    return KubernetesLock(
        api,
        namespace=lease.kubernetes_namespace,
        name=lease.kubernetes_lease,
        holder=holder,
        duration=lease.duration,
        request_timeout=cluster.request_timeout,
    )


def lease_backend(settings: Settings, engine: AsyncEngine, holder: str) -> LeaseBackend:
    """The ``loop`` lease for ``holder`` by ``lease.backend``; ConfigError when unusable."""
    check_lease(settings)
    row = PgLease(engine, holder, duration=settings.lease.duration, name=LOOP_LEASE)
    if settings.lease.backend == "postgresql":
        return row
    return KubeLease(lease_lock(settings, holder), row)
