"""`jarvis run`: the daemon. The scheduler and the HTTP server share one event
loop; SIGTERM or SIGINT stops new actions, lets an apply in flight finish or
time out, flushes events and exits 0 within the shutdown grace (< 10 s)."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator
from typing import Annotated

import anyio
import structlog
import typer

from jarvis.app import App, build_app, build_notifier
from jarvis.cli.common import run as run_async
from jarvis.cli.common import settings_from
from jarvis.config import ConfigError, Settings
from jarvis.loop.killswitch import AdminService
from jarvis.loop.scheduler import Scheduler
from jarvis.telemetry.http import HttpServer

log = structlog.get_logger("jarvis")


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
    """Run the reconcile loop until SIGTERM or SIGINT."""
    overrides: dict[str, object] = {}
    base = settings_from(ctx)
    if interval is not None:
        overrides["loop"] = base.loop.model_copy(update={"interval": interval})
    if http_port is not None:
        overrides["http"] = base.http.model_copy(update={"port": http_port})
    if dry_run:
        overrides["dry_run"] = True
    settings = base.model_copy(update=overrides) if overrides else base
    run_async(lambda: _daemon(settings, max_ticks=ticks))


async def _daemon(settings: Settings, *, max_ticks: int | None) -> None:
    # The handlers stay installed until the daemon has finished shutting down,
    # then signals are ignored while the process exits: a second SIGTERM during
    # the shutdown is logged, not fatal (it used to end the process with 143).
    try:
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            await _serve(settings, signals, max_ticks=max_ticks)
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)


async def _serve(settings: Settings, signals: AsyncIterator[int], *, max_ticks: int | None) -> None:
    app = await build_app(settings)
    try:
        notifier = build_notifier(settings, app.store, app.clock, app.metrics)
    except BaseException:
        await app.aclose()
        raise
    scheduler = Scheduler(
        app.reconciler,
        app.clock,
        app.metrics,
        interval=settings.loop.interval,
        jitter=settings.loop.jitter,
        tick_timeout=settings.tick_timeout,
        shutdown_grace=settings.loop.shutdown_grace,
    )
    server = _http_server(settings, app, scheduler) if settings.http.enabled else None
    try:
        if server is not None:
            await _listen(server, settings)
        log.info(
            "jarvis started",
            database=app.store.url,
            actuators=[a.name for a in app.actuators],
            policies=[p.name for p in app.reconciler.policies],
            interval=settings.loop.interval,
            dry_run=settings.dry_run,
            http_port=server.port if server else None,
            notify=sorted(notifier.channels) if notifier else [],
        )
        async with anyio.create_task_group() as group:
            group.start_soon(_stop_on_signal, scheduler, signals)
            if notifier is not None:
                # Beside the scheduler, never inside a tick: a slow receiver delays no action.
                group.start_soon(notifier.run)
            await scheduler.run(max_ticks=max_ticks)
            group.cancel_scope.cancel()
    finally:
        with anyio.CancelScope(shield=True):
            if server is not None:
                await server.stop()
            await app.aclose()
        log.info("jarvis stopped", ticks=scheduler.ticks, overruns=scheduler.overruns)


async def _listen(server: HttpServer, settings: Settings) -> None:
    """Start the HTTP server, or exit 2 with one line when its port cannot be had."""
    try:
        await server.start()
    except OSError as exc:
        where = f"{settings.http.host}:{settings.http_port}"
        raise ConfigError(
            f"http.port: cannot listen on {where}: {exc.strerror or exc}; "
            "choose another with --http-port or JARVIS_HTTP__PORT"
        ) from None


async def _stop_on_signal(scheduler: Scheduler, signals: AsyncIterator[int]) -> None:
    async for signum in signals:
        name = signal.Signals(signum).name
        if scheduler.stopping:
            log.info("already stopping", signal=name)
            continue
        log.info("stopping", signal=name)
        scheduler.stop()


def _http_server(settings: Settings, app: App, scheduler: Scheduler) -> HttpServer:
    async def ready() -> tuple[bool, dict[str, str]]:
        checks: dict[str, str] = {}
        ok = True
        try:
            await app.store.ping()
            checks["store"] = "ok"
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            ok = False
            checks["store"] = str(exc)
        try:
            await app.killswitch.read()
            checks["killswitch"] = "ok"
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            ok = False
            checks["killswitch"] = str(exc)
        return ok, checks

    token = settings.admin_token.get_secret_value() if settings.admin_token else None
    return HttpServer(
        host=settings.http.host,
        port=settings.http_port,
        metrics=app.metrics,
        healthy=scheduler.healthy,
        ready=ready,
        admin=AdminService(app.killswitch),
        admin_token=token,
    )
