"""One-shot commands that act (`jarvis tick`, `jarvis deploy`) hold the lease while they do.

Beside running replicas, a one-shot tick that simply acted would be a second
actor: exactly what the lease exists to prevent. So on PostgreSQL such a
command first takes the leader lease itself (`jarvis.loop.election.Elector`,
renewed in the background while it runs), writes its intents under that
epoch's fence, and releases the lease when done; when a replica holds it, the
command exits 2 naming the leader. It never closes orphaned intents: it is not
the loop's owner. Once it holds the lease (or, on SQLite, the node lock) it reads
back the unknown outcomes still in the retry window, as the daemon does at start
(`jarvis.loop.unknowns`), so its tick asks their providers whether they were
made. Dry runs and `jarvis plan` apply nothing, take no lease and ask nothing.
With shards (`loop.shards` > 1) it refuses: the shard leases fence the fleet.
On SQLite, where there is no lease, the command takes the file's node lock
(`jarvis.store.nodelock`) for as long as it acts: beside a running `jarvis
run` (or another acting one-shot) it exits 2 naming the holder's pid.

Its tick is bounded by ``loop.tick_timeout`` as the daemon's is, by the
scheduler's own `jarvis.loop.scheduler.bounded_tick` (`one_tick`): a cron of
`jarvis tick` whose applies hang holds the lock or lease no longer than the
daemon's tick would. A cut tick records what the daemon's does, is flushed (or,
what the database did not take, spooled) before the lock or lease is released,
and the command exits 1 with one line (`TickCutError`; with ``--json`` printed as
``{"error": LINE}`` too, `jarvis.cli.common.fail`).
"""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING

import anyio

from jarvis.config import ConfigError, Settings

if TYPE_CHECKING:
    from jarvis.app import App
    from jarvis.loop.reconciler import TickReport


class TickCutError(Exception):
    """A one-shot's tick cut at ``loop.tick_timeout``: it may work later (exit 1)."""

    def __init__(self, timeout: float, *, records: bool) -> None:
        done = (
            "what it did is recorded, and what it planned and did not reach is blocked "
            "with reason tick_timeout (jarvis events); the next tick takes them up"
            if records
            else "nothing was recorded"
        )
        super().__init__(
            f"the tick was cut at loop.tick_timeout ({timeout:g} s), as the daemon's is: "
            f"{done}. The log above says what was slow; raise loop.tick_timeout if a tick "
            "must take longer"
        )


async def one_tick(
    settings: Settings,
    command: str,
    build: Callable[[], Awaitable[App]],
    *,
    dry_run: bool,
    records: bool = True,
) -> TickReport:
    """One tick of the app ``build`` makes, acting alone (`acting_app`), bounded by
    ``loop.tick_timeout`` exactly as the daemon's (`bounded_tick`).

    A cut tick raises `TickCutError` once the lock or lease is released and the app
    closed, its record flushed or spooled: the operator reads the line after what the
    tick did has been made safe.
    """
    from jarvis.loop.scheduler import bounded_tick

    async with acting_app(settings, command, build, dry_run=dry_run, records=records) as app:
        report = await bounded_tick(app.reconciler, settings.tick_timeout, dry_run=dry_run)
        if report is None:
            await _spool_rest(app)
    if report is None:
        raise TickCutError(settings.tick_timeout, records=records)
    return report


@asynccontextmanager
async def acting_app(
    settings: Settings,
    command: str,
    build: Callable[[], Awaitable[App]],
    *,
    dry_run: bool,
    records: bool = True,
) -> AsyncIterator[App]:
    """The app ``build`` makes, alone in acting on its database while the body runs.

    On SQLite the node lock is taken before anything is built, so a refused
    command opens nothing of the daemon's (its spool included). A command that
    ``records`` what it did, a dry run included, is refused at once on a file it
    cannot write: it would spool every event where nothing replays them.
    """
    with _node_lock(settings, command, dry_run=dry_run, records=records):
        app = await build()
        try:
            async with holding_lease(settings, app, command, dry_run=dry_run):
                if not dry_run:
                    # The writer now: its tick asks about earlier unknown outcomes.
                    await app.reconciler.load_unknowns()
                yield app
        finally:
            await app.aclose()


async def _spool_rest(app: App) -> None:
    """Spool what a cut tick's flush left buffered (the database did not take it within the
    flush's few seconds): the process exits with every event written or spooled, as the
    daemon does at its stop."""
    import structlog

    spooled = await app.store.park()
    if spooled:
        structlog.get_logger("jarvis.cli").warning(
            "events spooled at exit: the database did not take them in time", events=spooled
        )


@contextmanager
def _node_lock(settings: Settings, command: str, *, dry_run: bool, records: bool) -> Iterator[None]:
    """Hold the SQLite file's node lock, or raise ConfigError naming the process that has it,
    or saying the file cannot be written here (its intents could never be made durable, its
    records only spooled). A dry run takes no lock, and one that records nothing no check."""
    if dry_run and not records:
        yield
        return
    from jarvis.store import StoreError
    from jarvis.store.nodelock import AlreadyRunningError, NodeLock, sqlite_path
    from jarvis.store.sqlite_read import check_writable

    path = sqlite_path(settings.database_url)
    if path is None:  # PostgreSQL, or an in-memory database nobody else sees
        yield
        return
    try:
        check_writable(str(path), f"{command} --dry-run" if dry_run else command)
    except StoreError as exc:
        raise ConfigError(str(exc)) from None
    if dry_run:  # a dry run acts on nothing
        yield
        return
    lock = NodeLock(path)
    try:
        lock.acquire()
    except AlreadyRunningError as exc:
        who = f"pid {exc.pid or 'unknown'}"
        raise ConfigError(
            f"another jarvis process ({who}) acts on {path}: `jarvis {command}` would act "
            "beside it. Let the daemon act (the status page queues overrides), or use --dry-run"
        ) from None
    except StoreError as exc:  # cannot be locked, or cannot be written
        raise ConfigError(str(exc)) from None
    try:
        yield
    finally:
        lock.release()


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
    from jarvis.loop.election import Elector
    from jarvis.loop.leases import lease_backend
    from jarvis.store.lease import lease_status

    holder = f"jarvis-{command}@{socket.gethostname()}-{os.getpid()}"
    elector = Elector(
        lease_backend(settings, app.store.engine, holder),
        app.metrics,
        renew_deadline=settings.lease.renew_deadline,
        retry_period=settings.lease.retry_period,
        explain=app.store.explain,
    )
    await elector.step()
    fence = elector.fence()
    if fence is None:
        status = await lease_status(app.store.engine)
        lease = status.lease
        if lease is None or lease.expires_at <= status.now:
            held = [shard for shard in status.shards if shard.expires_at > status.now]
            if held:
                raise ConfigError(
                    f"replicas with shards hold this database ({held[0].holder} holds "
                    f"{held[0].name}): `jarvis {command}` would act beside them. Let the "
                    "daemon act, or use --dry-run"
                )
            why = "see the log"
            if elector.last_error is not None:
                why = elector.explain(elector.last_error)
            raise ConfigError(f"`jarvis {command}` could not take the leader lease: {why}")
        raise ConfigError(
            f"{lease.holder} leads the loop on this database (epoch {lease.epoch}): "
            f"`jarvis {command}` would act beside it. Let the daemon act, or use --dry-run"
        )
    app.reconciler.act_as(fence)
    failed: Exception | None = None
    try:
        async with anyio.create_task_group() as group:
            group.start_soon(elector.run)
            try:
                yield
            except Exception as exc:  # noqa: BLE001 - raised below, past the group
                # The body's error leaves as itself: the task group would wrap it in an
                # ExceptionGroup, which `jarvis.cli.common.run` prints as a traceback (a
                # tick whose database refused its last flush).
                failed = exc
            group.cancel_scope.cancel()
        if failed is not None:
            raise failed
    finally:
        app.reconciler.act_as(None)
        with anyio.CancelScope(shield=True):
            await elector.resign()
