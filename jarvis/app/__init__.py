"""The composition root: builds policies, the guard, the store and the reconciler
from settings, and the sensors and actuators through the provider registry
(`jarvis.providers`). What the loop decides with is built in `decide`, what
Jarvis tells people in `tell`; both are re-exported here.

The CLI, the simulation and the end-to-end tests call `build_app`; nothing else
constructs these objects, and there are no singletons or registration on import.
Cloud SDKs are imported lazily, only for the providers that are configured, so
start-up stays fast on the embedded default.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

from jarvis.app.decide import (
    build_breakers,
    build_budgets,
    build_endpoint_watch,
    build_failover,
    build_guard,
    build_policies,
    churn_rules,
    history_size,
    report_churn_rules,
)
from jarvis.app.tell import (
    build_notifier,
    build_report_sender,
    build_revenue_keeper,
    notify_channels,
)
from jarvis.model import Clock
from jarvis.providers import (
    PROVIDERS,
    Provider,
    build_metric_sources,
    build_sensors,
    check_allowlist,
    check_table,
)

if TYPE_CHECKING:
    from pathlib import Path

    # The loop, the guard and the metrics are imported by the functions that
    # build them: `jarvis killswitch engage` uses this module only to open the
    # store and the switch, and must not wait for the rest (issue 11 item 10).
    from jarvis.actuators.base import MetricSource, Sensor
    from jarvis.config import Settings
    from jarvis.loop.killswitch import KillSwitch
    from jarvis.loop.reconciler import Reconciler
    from jarvis.policies.base import Policy
    from jarvis.store import EventStore, KillSwitchBackend
    from jarvis.telemetry.metrics import Metrics

__all__ = [
    "App",
    "build_app",
    "build_breakers",
    "build_budgets",
    "build_endpoint_watch",
    "build_failover",
    "build_guard",
    "build_notifier",
    "build_policies",
    "build_report_sender",
    "build_revenue_keeper",
    "churn_rules",
    "history_size",
    "killswitch_backend",
    "notify_channels",
    "open_store",
    "report_churn_rules",
]


@dataclass
class App:
    settings: Settings
    clock: Clock
    store: EventStore
    killswitch: KillSwitch
    reconciler: Reconciler
    metrics: Metrics
    actuators: list[Sensor] = field(default_factory=list)
    sources: list[MetricSource] = field(default_factory=list)

    async def aclose(self) -> None:
        for actuator in self.actuators:
            await actuator.aclose()
        for source in self.sources:
            await source.aclose()
        await self.killswitch.backend.aclose()
        await self.store.aclose()


async def open_store(
    settings: Settings,
    *,
    auto_migrate: bool | None = None,
    read_only: bool = False,
    refuse_unwritable: bool = True,
    daemon: bool = False,
) -> EventStore:
    """The event store of ``settings``; ``read_only`` for a command that only reads.

    A read creates nothing: a SQLite file that does not exist is refused in one
    line (ConfigError, `no_database`) rather than created, directory and all, and
    read empty. A read writes nothing and needs no spool, and beside a running daemon,
    which owns the spool, it would only warn that it runs without one; a
    SQLite file it cannot write (a read-only mount) it reads without writing.
    A writer is refused such a file in one line (StoreError): it would spool
    everything, where nothing that can write the database replays it. Only a
    kill-switch flip held in Redis passes ``refuse_unwritable=False``: the switch
    is flipped already, and its event had better wait in a spool than nowhere.
    PostgreSQL that answers but refuses the writes (a read-only role or database, or
    credentials refused since the command connected) is told only at the first flush:
    a command's store then raises in one line and spools nothing
    (`EventStore.spool_refusals`), where the ``daemon``'s waits it out in the spool (a
    standby the URL reaches after a failover).
    """
    from jarvis.store import EventStore, Redactor
    from jarvis.store.direct import sqlite_file

    absent = absent_database(settings) if read_only else None
    if absent is not None:
        from jarvis.config import ConfigError

        raise ConfigError(no_database(absent))
    path = None if read_only or not refuse_unwritable else sqlite_file(settings.database_url)
    if path is not None:
        from jarvis.store.sqlite_read import check_writable

        check_writable(path)

    store = await EventStore.connect(
        settings.database_url,
        spool_path=None if read_only else settings.spool_path,
        auto_migrate=auto_migrate,
        read_only=read_only,
        redactor=Redactor(settings.secrets),
    )
    store.spool_refusals = daemon or not refuse_unwritable
    return store


def absent_database(settings: Settings) -> Path | None:
    """The SQLite file ``settings`` name when there is none (None: there is one, or the
    database is PostgreSQL or in memory): what a reader must not create."""
    import errno
    from pathlib import Path

    from jarvis.store.direct import sqlite_file

    name = sqlite_file(settings.database_url)
    if name is None:
        return None
    path = Path(name).absolute()
    try:
        path.stat()
    except OSError as exc:
        # Not there, or no directory to hold it (`no_database` says which). A path that
        # cannot be followed (a symlink loop) is no missing database: opening it names why.
        return path if exc.errno in (errno.ENOENT, errno.ENOTDIR) else None
    return None


def no_database(path: Path) -> str:
    """The one line a reading command says of a SQLite database that does not exist."""
    import errno
    import stat

    from jarvis.store.errors import file_trouble

    try:
        code = None if stat.S_ISDIR(path.parent.stat().st_mode) else errno.ENOTDIR
    except OSError as exc:
        code = exc.errno
    if code is None:
        return (
            f"no event database at {path}: nothing is recorded there yet. `jarvis run` "
            "creates it (so do `jarvis tick` and `jarvis db upgrade`); if a daemon records "
            "elsewhere, check database_url"
        )
    why, advice = file_trouble(code, path)  # no directory to hold it, or a file in the way
    creates = " (`jarvis db upgrade` creates both)" if code == errno.ENOENT else ""
    return f"no event database at {path}: {why}. {advice}{creates}"


def killswitch_backend(settings: Settings, store: EventStore) -> KillSwitchBackend:
    if settings.redis_url:
        from jarvis.store.redis_killswitch import RedisKillSwitch

        return RedisKillSwitch(settings.redis_url)
    from jarvis.store import DbKillSwitch

    return DbKillSwitch(store.engine)


async def _check_switch_access(backend: KillSwitchBackend) -> None:
    """Read the kill switch once: a lasting refusal (credentials its server refuses, a user
    its ACL denies the switch's commands or key) stops a start in one line (exit 2), as the
    database's does, since no tick could ever read it; closes ``backend`` then. Any other
    failure is the loop's to meet: a Redis down at start may come back, and meanwhile the
    switch reads engaged (fails safe)."""
    from jarvis.store import StoreError

    try:
        await backend.read()
    except StoreError as exc:
        if not exc.lasting:
            return
        await backend.aclose()
        raise


async def build_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    actuators: Sequence[Sensor] | None = None,
    sources: Sequence[MetricSource] | None = None,
    providers: Sequence[Provider] = PROVIDERS,
    policies: Sequence[Policy] | None = None,
    metrics: Metrics | None = None,
    run_id: str | None = None,
    auto_migrate: bool | None = None,
    store: EventStore | None = None,
    switch: KillSwitchBackend | None = None,
    recover_orphans: bool = True,
    daemon: bool = False,
) -> App:
    """Open the store, build everything, and start the reconciler (orphans closed).

    Sensors and actuators come from the ``providers`` table (`jarvis.providers`)
    unless ``actuators`` are given. ``store`` and ``switch`` replace the ones the
    settings name (the simulation passes in-memory ones); the app closes them
    with everything else. One-shot commands pass ``recover_orphans=False``: only
    the process that owns the loop closes intents a crash left open. Only
    `jarvis run` passes ``daemon``: its store spools what a database refusing
    writes does not take (`open_store`).
    """
    from jarvis.loop.clock import WallClock
    from jarvis.loop.killswitch import KillSwitch
    from jarvis.loop.reconciler import Reconciler
    from jarvis.telemetry.metrics import Metrics

    check_table(providers)
    check_allowlist(settings, providers)
    clock = clock or WallClock()
    metrics = metrics or Metrics()
    store = store or await open_store(settings, auto_migrate=auto_migrate, daemon=daemon)
    try:
        backend = switch or killswitch_backend(settings, store)
        if switch is None and settings.redis_url:
            await _check_switch_access(backend)
        killswitch = KillSwitch(backend, store, clock)
        built = (
            list(actuators) if actuators is not None else build_sensors(settings, clock, providers)
        )
        metric_sources = list(sources) if sources is not None else build_metric_sources(settings)
        reconciler = Reconciler(
            actuators=built,
            policies=list(policies) if policies is not None else build_policies(settings),
            guard=build_guard(settings),
            store=store,
            killswitch=killswitch,
            clock=clock,
            metrics=metrics,
            run_id=run_id or secrets.token_hex(3),
            observe_timeout=settings.loop.observe_timeout,
            apply_timeout=settings.loop.apply_timeout,
            dry_run=settings.dry_run,
            history_snapshots=history_size(settings),
            breakers=build_breakers(settings),
            sources=metric_sources,
            endpoints=build_endpoint_watch(settings),
            fleet_window=(
                timedelta(seconds=settings.loop.interval) if settings.loop.shards > 1 else None
            ),
        )
        await reconciler.start(recover_orphans=recover_orphans)
    except BaseException:
        await store.aclose()
        raise
    return App(
        settings=settings,
        clock=clock,
        store=store,
        killswitch=killswitch,
        reconciler=reconciler,
        metrics=metrics,
        actuators=built,
        sources=metric_sources,
    )
