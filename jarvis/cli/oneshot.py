"""One-shot commands that act (`jarvis tick`, `jarvis deploy`) hold the lease while they do.

Beside running replicas, a one-shot tick that simply acted would be a second
actor: exactly what the lease exists to prevent. So on PostgreSQL such a
command first takes the leader lease itself (`jarvis.loop.election.Elector`,
renewed in the background while it runs), writes its intents under that
epoch's fence, and releases the lease when done; when a replica holds it, the
command exits 2 naming the leader. It never closes orphaned intents: it is not
the loop's owner. Dry runs and `jarvis plan` apply nothing and take no lease.
With shards (`loop.shards` > 1) it refuses: the shard leases fence the fleet.
On SQLite nothing changes (one node; see `jarvis.store.nodelock`).
"""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio

from jarvis.app import App
from jarvis.config import ConfigError, Settings
from jarvis.loop.election import Elector
from jarvis.loop.leases import lease_backend
from jarvis.store.lease import lease_status


@asynccontextmanager
async def holding_lease(
    settings: Settings, app: App, command: str, *, dry_run: bool
) -> AsyncIterator[None]:
    """Run the body as the leader on PostgreSQL, or raise ConfigError naming who leads."""
    if dry_run or not settings.database_url.startswith("postgresql"):
        yield
        return
    if settings.loop.shards > 1:
        # The shard leases, not the `loop` lease, fence the fleet: holding `loop`
        # would fence nothing the replicas do.
        raise ConfigError(
            f"loop.shards = {settings.loop.shards}: the replicas hold the fleet's shards, "
            f"`jarvis {command}` would act beside them. Let the daemon act, or use --dry-run"
        )
    holder = f"jarvis-{command}@{socket.gethostname()}-{os.getpid()}"
    elector = Elector(
        lease_backend(settings, app.store.engine, holder),
        app.metrics,
        renew_deadline=settings.lease.renew_deadline,
        retry_period=settings.lease.retry_period,
    )
    await elector.step()
    fence = elector.fence()
    if fence is None:
        status = await lease_status(app.store.engine)
        lease = status.lease
        if lease is None or lease.expires_at <= status.now:
            raise ConfigError(f"`jarvis {command}` could not take the leader lease (see the log)")
        raise ConfigError(
            f"{lease.holder} leads the loop on this database (epoch {lease.epoch}): "
            f"`jarvis {command}` would act beside it. Let the daemon act, or use --dry-run"
        )
    app.reconciler.act_as(fence)
    try:
        async with anyio.create_task_group() as group:
            group.start_soon(elector.run)
            yield
            group.cancel_scope.cancel()
    finally:
        app.reconciler.act_as(None)
        with anyio.CancelScope(shield=True):
            await elector.resign()
