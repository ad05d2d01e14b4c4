"""`jarvis run`: the daemon. The scheduler and the HTTP server share one event
loop; SIGTERM, SIGINT or SIGHUP (a closed terminal; Jarvis reloads nothing)
stops new actions, lets an apply in flight finish or time out, flushes events
and exits 0 within the shutdown grace (< 10 s).

On PostgreSQL any number may run: an elector (`jarvis.loop.election`) beside
the scheduler decides which one ticks, and a clean stop releases the lease.
On SQLite one runs: it holds the file's node lock (`jarvis.store.nodelock`)."""

from __future__ import annotations

import os
import secrets
import signal
import socket
from collections.abc import AsyncIterator
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Annotated, Any

import typer

from jarvis.cli import heap
from jarvis.cli.common import run as run_async
from jarvis.cli.common import settings_from

if TYPE_CHECKING:
    from anyio.abc import TaskGroup

    from jarvis.app import App
    from jarvis.config import Settings
    from jarvis.loop.election import Elector
    from jarvis.loop.overrides import OverrideQueue
    from jarvis.loop.scheduler import Gate, Scheduler
    from jarvis.loop.shards import ShardElector
    from jarvis.loop.shutdown import Shutdown

    AnyElector = Elector | ShardElector
    from jarvis.notify import Notifier
    from jarvis.store.nodelock import NodeLock
    from jarvis.telemetry.http import HttpServer


def _log() -> Any:
    """The daemon's logger; structlog is imported when the daemon runs, not for `--help`."""
    import structlog

    return structlog.get_logger("jarvis")


def run(
    ctx: typer.Context,
    interval: Annotated[
        float | None,
        typer.Option("--interval", min=0.01, help="Seconds between ticks (default 30)."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Evaluate and record; apply nothing.")
    ] = False,
    http_port: Annotated[
        int | None, typer.Option("--http-port", min=0, max=65535, help="Default: $PORT, else 8080.")
    ] = None,
    ticks: Annotated[
        int | None, typer.Option("--ticks", min=1, help="Stop after this many ticks.")
    ] = None,
) -> None:
    """Run the reconcile loop until SIGTERM, SIGINT or SIGHUP."""
    # Validated with the configuration, over it: `--interval 1e308` is refused
    # by the same bound as `loop.interval`, not met later as an OverflowError.
    settings = settings_from(
        ctx,
        loop=None if interval is None else {"interval": interval},
        http=None if http_port is None else {"port": http_port},
        dry_run=True if dry_run else None,
    )
    run_async(lambda: _daemon(settings, max_ticks=ticks))


_STOPPING = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
"""The signals that stop the daemon gracefully."""


async def _daemon(settings: Settings, *, max_ticks: int | None) -> None:
    import anyio

    # The handlers stay installed until the daemon has finished shutting down,
    # then signals are ignored while the process exits: a second SIGTERM during
    # the shutdown is logged, not fatal (it used to end the process with 143).
    # SIGHUP too: by default it ended the process at once, with no final flush
    # and no lease released, when the terminal of a foreground run closed.
    try:
        with anyio.open_signal_receiver(*_STOPPING) as signals:
            await _serve(settings, signals, max_ticks=max_ticks)
    finally:
        for signum in _STOPPING:
            signal.signal(signum, signal.SIG_IGN)


async def _open(
    settings: Settings, overrides: OverrideQueue
) -> tuple[App, NodeLock | None, AnyElector | None, Notifier | None]:
    """Build the app (on SQLite holding the file alone), its elector and notifier.

    The page's ``overrides`` are the last policy: they reach the guard in a tick.
    Whatever was taken is given back when a later step fails.
    """
    from jarvis.app import build_app, build_notifier, build_policies
    from jarvis.loop.leases import check_lease

    check_lease(settings)
    replicated = settings.database_url.startswith("postgresql")
    lock = None if replicated else _single_node(settings)
    app: App | None = None
    try:
        # Replicas close orphans only once elected, and only those of stopped runs.
        policies = [*build_policies(settings), overrides]
        app = await build_app(
            settings, policies=policies, recover_orphans=not replicated, daemon=True
        )
        notifier = build_notifier(settings, app.store, app.clock, app.metrics)
        elector = _elector(settings, app) if replicated else None
    except BaseException:
        if app is not None:
            await app.aclose()
        if lock is not None:
            lock.release()
        raise
    if elector is None:
        app.metrics.leader.set(1)  # one node: it leads
    return app, lock, elector, notifier


def _leads(elector: AnyElector) -> bool:
    """Whether this replica leads now: holds the lease, or with shards any shard."""
    from jarvis.loop.election import Elector

    if isinstance(elector, Elector):
        return elector.epoch is not None
    return bool(elector.held())


def _start_beside(
    group: TaskGroup,
    settings: Settings,
    app: App,
    elector: AnyElector | None,
    notifier: Notifier | None,
) -> None:
    """Start what runs beside the scheduler, never a tick: retention, election, notices, report,
    revenue. What each shields from cancellation ends by the shutdown deadline all the same;
    what the fleet does once, one replica does (`jarvis.loop.duties`)."""
    from jarvis.loop.duties import FleetDuties
    from jarvis.loop.retention import Pruner

    shutdown = app.reconciler.shutdown
    duties = FleetDuties(elector)
    app.metrics.fleet_duties(duties.held)  # a duty's gauges are its holder's alone

    def shielded() -> AbstractContextManager[object, bool]:
        return shutdown.bound(shield=True)

    pruner = Pruner.for_policies(
        app.store,
        settings.retention,
        app.clock,
        app.reconciler.policies,
        app.metrics,
        budgets=app.reconciler.changes.budgets,
    )
    pruner.shielded = shielded
    pruner.leads = duties.held
    group.start_soon(pruner.run)
    if elector is not None:
        group.start_soon(elector.run)
    if notifier is not None:
        # A slow receiver delays no action.
        notifier.delivery.shielded = shielded
        notifier.reports_outage = duties.held_at_last_answer
        notifier.leased = elector is not None  # no replica acts with the database away
        group.start_soon(notifier.run)
    if settings.report.deliver_at is not None:
        from jarvis.app import build_report_sender

        sender = build_report_sender(settings, app.store, app.clock)
        if sender is not None:
            sender.leads = duties.held
            group.start_soon(sender.run)
    from jarvis.app import build_revenue_keeper

    keeper = build_revenue_keeper(settings, app.store, app.clock, app.metrics)
    if keeper is not None:
        keeper.shielded = shielded
        keeper.leads = duties.held
        group.start_soon(keeper.run)


async def _serve(settings: Settings, signals: AsyncIterator[int], *, max_ticks: int | None) -> None:
    import anyio

    from jarvis.cli.surfaces import http_server
    from jarvis.config.timing import timing_warnings
    from jarvis.loop.overrides import OverrideQueue
    from jarvis.loop.scheduler import Scheduler
    from jarvis.providers import acting_schemes, glob_warnings

    log = _log()
    for warning in timing_warnings(settings):  # what `jarvis config check` prints
        log.warning("timeouts do not fit", detail=warning)
    for warning in glob_warnings(settings):  # what `jarvis config check` prints
        log.warning("resource glob spans path segments", detail=warning)
    # An override waits for the tick in flight and the one it wakes, at most.
    overrides = OverrideQueue(wait=2 * settings.tick_timeout + 10, schemes=acting_schemes())
    app, lock, elector, notifier = await _open(settings, overrides)
    scheduler = Scheduler(
        app.reconciler,
        app.clock,
        app.metrics,
        interval=settings.loop.interval,
        jitter=settings.loop.jitter,
        tick_timeout=settings.tick_timeout,
        shutdown_grace=settings.loop.shutdown_grace,
        gate=None if elector is None else _gate(elector, app),
        hooks=overrides,
    )
    overrides.wake = scheduler.wake
    if elector is not None:
        elector.on_elected = scheduler.wake
        overrides.leading = lambda: _leads(elector)
    replica = None if elector is None else elector.replica
    server = (
        http_server(settings, app, scheduler, overrides, replica, notifier)
        if settings.http.enabled
        else None
    )
    try:
        if server is not None:
            await _listen(server, settings)
        if elector is not None:
            await elector.step()  # the first tick knows whether it leads
        log.info(
            "jarvis started",
            database=app.store.url,
            actuators=[a.name for a in app.actuators],
            policies=[p.name for p in app.reconciler.policies],
            interval=settings.loop.interval,
            dry_run=settings.dry_run,
            http_port=server.port if server else None,
            replica=None if elector is None else elector.replica,
            notify=sorted(notifier.channels) if notifier else [],
        )
        heap.settle()  # the app is built and lives as long as the process
        async with anyio.create_task_group() as group:
            group.start_soon(_stop_on_signal, scheduler, signals)
            _start_beside(group, settings, app, elector, notifier)
            await scheduler.run(max_ticks=max_ticks)
            group.cancel_scope.cancel()
    finally:
        # Stopped by a signal, --ticks or a failure: the teardown shares the shutdown deadline.
        scheduler.stop()
        await _teardown(app, server, elector, scheduler.shutdown)
        if lock is not None:
            lock.release()
        log.info("jarvis stopped", ticks=scheduler.ticks, overruns=scheduler.overruns)


async def _teardown(
    app: App, server: HttpServer | None, elector: AnyElector | None, shutdown: Shutdown
) -> None:
    """Stop serving, give the lease back and close, all by the shutdown deadline; then spool
    what it cut off (`EventStore.park`) before the store closes."""
    log = _log()
    with shutdown.bound(shield=True):
        if server is not None:
            await server.stop()
    if elector is not None:
        with shutdown.bound(shield=True) as resigning:
            await elector.resign()
        if resigning.cancelled_caught:
            log.warning(
                "lease not released by the shutdown deadline; it expires by itself",
                replica=elector.replica,
            )
    with shutdown.closing():
        spooled = await app.store.park()
        if spooled:
            log.warning(
                "events spooled at shutdown: the database did not take them in time",
                events=spooled,
            )
        await app.aclose()


def _single_node(settings: Settings) -> NodeLock | None:
    """On SQLite, hold the database alone, or exit 2 saying who does, or that it cannot be
    written here (a read-only mount): the daemon would only spool."""
    from jarvis.config import ConfigError
    from jarvis.store import StoreError
    from jarvis.store.nodelock import NodeLock, sqlite_path
    from jarvis.store.sqlite_read import check_writable

    path = sqlite_path(settings.database_url)
    if path is None:
        return None
    lock = NodeLock(path)
    try:
        check_writable(str(path), "run")
        lock.acquire()
    except StoreError as exc:
        raise ConfigError(str(exc)) from None
    return lock


def _gate(elector: AnyElector, app: App) -> Gate:
    from jarvis.loop.election import Elector, Leadership
    from jarvis.loop.shards import ShardLeadership

    if isinstance(elector, Elector):
        return Leadership(elector, app.reconciler)
    return ShardLeadership(elector, app.reconciler)


def _elector(settings: Settings, app: App) -> AnyElector:
    from jarvis.loop.election import Elector
    from jarvis.loop.leases import lease_backend
    from jarvis.loop.shards import ShardElector

    lease = settings.lease
    replica = lease.replica_id or f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(2)}"
    backend = lease_backend(settings, app.store.engine, replica)  # refuses what it cannot elect
    if settings.loop.shards > 1:
        return ShardElector(
            app.store.engine,
            replica,
            app.metrics,
            shards=settings.loop.shards,
            duration=lease.duration,
            renew_deadline=lease.renew_deadline,
            retry_period=lease.retry_period,
            explain=app.store.explain,
        )
    return Elector(
        backend,
        app.metrics,
        renew_deadline=lease.renew_deadline,
        retry_period=lease.retry_period,
        explain=app.store.explain,
    )


async def _listen(server: HttpServer, settings: Settings) -> None:
    """Start the HTTP server, or exit 2 with one line when its port cannot be had."""
    from jarvis.config import ConfigError

    try:
        await server.start()
    except OSError as exc:
        where = f"{settings.http.host}:{settings.http_port}"
        raise ConfigError(
            f"http.port: cannot listen on {where}: {exc.strerror or exc}; "
            "choose another with --http-port or JARVIS_HTTP__PORT"
        ) from None


async def _stop_on_signal(scheduler: Scheduler, signals: AsyncIterator[int]) -> None:
    log = _log()
    async for signum in signals:
        name = signal.Signals(signum).name
        if scheduler.stopping:
            log.info("already stopping", signal=name)
            continue
        log.info("stopping", signal=name)
        scheduler.stop()
