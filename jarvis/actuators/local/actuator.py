"""The local-process actuator: services on this host, observed as ``local://NAME``.

Built by the provider registry (`jarvis.providers`) from ``[[local.services]]``.
Healthy means the process Jarvis started is alive and its health check passes;
a service with no process of ours is unhealthy with 0 of 1 running, so the
heal policy's RESTART starts it (after ending what its last process left
behind, `process.survivors`), and the retry budget and
escalation apply as to any provider. Jarvis recognises its processes by pidfile and command line
(`process.is_ours`), so a daemon restart finds them again and a process it did
not start is never signalled.

Idempotency: the key of the action that started a process is kept in its
pidfile; a RESTART or START whose key is on the live process is answered as
already applied. STOP and START are idempotent by state. A STOP leaves a
marker (``NAME.stopped``) that a START or RESTART removes: while it is there
the service is reported healthy with 0 of 0 desired running, so the heal
policy does not undo an operator's `jarvis stop`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio

from jarvis.actuators.base import Scope
from jarvis.actuators.local.health import check
from jarvis.actuators.local.process import (
    Pidfiles,
    Record,
    UnrecordedError,
    exited,
    is_ours,
    signal_group,
    signal_survivors,
    spawn,
    still_running,
    survivors,
    unproven,
    why_not_run,
)
from jarvis.config.local import LocalServiceSettings, LocalSettings
from jarvis.model import (
    Action,
    ActionKind,
    Clock,
    ErrorKind,
    Health,
    Outcome,
    Replicas,
    ResourceRef,
    ResourceState,
)

PROVIDER = "local"
_POLL = 0.2
_SETTLE_POLLS = 10
"""How many polls `_exited` waits for a process mid-exec to show its environment."""
"""Seconds between looks while waiting for a start or a stop; not a tick, a syscall."""


class LocalActuator:
    """Starts, stops and restarts configured host processes; implements `Actuator`."""

    provider = PROVIDER
    action_kinds = frozenset({ActionKind.RESTART, ActionKind.START, ActionKind.STOP})

    def __init__(
        self,
        settings: LocalSettings,
        clock: Clock,
        *,
        name: str = "local",
        withheld: frozenset[str] = frozenset(),
    ) -> None:
        self.name = name
        self._withheld = withheld
        """Variables of the daemon's environment its services do not inherit (its secrets)."""
        self._inherit = tuple(settings.inherit_environment)
        self._log_limits = (settings.log_max_bytes, settings.log_backups)
        self._services = {service.name: service for service in settings.services}
        self._files = Pidfiles(settings.state_directory)
        self._clock = clock
        self._children: dict[str, subprocess.Popen[bytes]] = {}
        """Processes this daemon started, kept to reap them and read their exit codes."""
        self._orphans: list[subprocess.Popen[bytes]] = []
        """Children replaced before they were reaped (stopped by another process)."""
        self._stderr_from: dict[str, int] = {}
        """Per service this daemon started, its stderr log's size at the start: the
        detail of its exit quotes that run's stderr, not an earlier run's."""
        self._passed: dict[str, int] = {}
        """Per service, the pid last seen passing its check: past its start, whatever the clock."""

    @property
    def children(self) -> tuple[subprocess.Popen[bytes], ...]:
        """The processes this actuator started (and may have to reap), oldest first."""
        return (*self._orphans, *self._children.values())

    async def observe(self, _scope: Scope | None = None) -> list[ResourceState]:
        self._orphans = [child for child in self._orphans if child.poll() is None]
        states: dict[str, ResourceState] = {}

        async def one(service: LocalServiceSettings) -> None:
            states[service.name] = await self._observe(service)

        # Concurrently: each health check may take its whole timeout.
        async with anyio.create_task_group() as group:
            for service in self._services.values():
                group.start_soon(one, service)
        return [states[name] for name in self._services]

    async def _observe(self, service: LocalServiceSettings) -> ResourceState:
        max_bytes = self._log_limits[0]
        if max_bytes and self._files.over(service.name, max_bytes):
            # Locked only then: a `jarvis restart` beside the daemon finds the lock taken
            # (and fails as Busy) only while a rotation runs. Not while another changer
            # holds it, nor when nothing was ever started (no lock file) or the files
            # cannot be written. Without an await (a copy of at most 2 x log_max_bytes):
            # an apply of this daemon never finds the lock taken by its own observe.
            with contextlib.suppress(OSError), self._lock(service.name, create=False):
                self._rotate_logs(service.name)
        record = self._running(service.name)
        if record is None and self._files.stopped(service.name):
            # Stopped on request: that is its desired state, not a failure to heal.
            return self._state(service, Health.HEALTHY, 0, "stopped on request", desired=0)
        if record is None:
            return self._state(service, Health.UNHEALTHY, 0, self._why_not_running(service.name))
        passed, detail = await check(service, self._environment(service))
        if passed:
            health = Health.HEALTHY
            self._passed[service.name] = record.pid
        elif (
            self._passed.get(service.name) != record.pid
            and time.time() - record.started_at < service.start_timeout
        ):
            # A start still inside its grace (another process's, or one whose
            # apply was cut short): not yet a failure to heal.
            health, detail = Health.UNKNOWN, f"starting; {detail}"
        else:
            health = Health.UNHEALTHY
        return self._state(service, health, 1, f"pid {record.pid}; {detail}", record.pid)

    def _state(
        self,
        service: LocalServiceSettings,
        health: Health,
        running: int,
        detail: str,
        pid: int | None = None,
        *,
        desired: int = 1,
    ) -> ResourceState:
        return ResourceState(
            ref=ResourceRef(PROVIDER, service.name),
            health=health,
            observed_at=self._clock.now(),
            replicas=Replicas(desired=desired, running=running, min=0, max=1),
            detail=detail,
            attributes={} if pid is None else {"pid": pid},
        )

    def _running(self, name: str) -> Record | None:
        """The live process Jarvis started for ``name``, reaping it first if it exited."""
        child = self._children.get(name)
        if child is not None:
            child.poll()  # reaps an exited child, so /proc no longer shows a zombie
        record = self._files.read(name)
        return record if record is not None and is_ours(record) else None

    def _rotate_logs(self, name: str) -> None:
        """Rotate the service's logs past ``log_max_bytes`` (the caller holds its lock).
        A log that cannot be rotated (a full disk, a permission) is no reason to fail an
        observe or a start: it is tried again at the next."""
        max_bytes, backups = self._log_limits
        if max_bytes:
            with contextlib.suppress(OSError):
                self._files.rotate(name, max_bytes, backups)

    def _environment(self, service: LocalServiceSettings) -> dict[str, str]:
        """What the service and its health command run with (read now: a variable the
        daemon's environment gains or loses counts from the next start or check)."""
        return service.process_environment(os.environ, self._inherit, self._withheld)

    def _why_not_running(self, name: str) -> str:
        child = self._children.get(name)
        code = None if child is None else child.returncode
        detail = "not running" if code is None else f"not running; exited with code {code}"
        tail = self._files.stderr_tail(name, since=self._stderr_from.get(name, 0))
        return f"{detail}; stderr: {tail}" if tail else detail

    async def apply(self, action: Action, key: str) -> Outcome:
        service = self._services.get(action.target.name)
        if action.target.provider != PROVIDER or service is None:
            return Outcome.failure(
                f"{action.target} is not a configured local service",
                kind=ErrorKind.TERMINAL,
                code="NotConfigured",
            )
        try:
            with self._lock(service.name):
                return await self._apply(service, action.kind, key)
        except BlockingIOError:
            return Outcome.failure(
                f"another Jarvis process is changing {action.target}", code="Busy"
            )

    async def _apply(self, service: LocalServiceSettings, kind: str, key: str) -> Outcome:
        record = self._running(service.name)
        if kind == ActionKind.STOP:
            # Marked first, so heal leaves it stopped even if the stop is cut short.
            self._files.mark_stopped(service.name, key)
            if record is None:
                return await self._end_survivors(service, "not running")
            return await self._stop(service, record)
        self._files.clear_stopped(service.name)
        if record is not None:
            if record.key == key:
                return Outcome.success(f"already applied: pid {record.pid} was started by it")
            if kind == ActionKind.START:
                return Outcome.success(f"already running as pid {record.pid}")
            stopped = await self._stop(service, record)
            if not stopped.ok:
                return stopped
        return await self._start(service, key)

    async def _start(self, service: LocalServiceSettings, key: str) -> Outcome:
        # A crashed process's children may hold its port: never start beside them.
        ended = await self._end_survivors(service, "not running")
        if not ended.ok:
            return ended
        self._rotate_logs(service.name)
        self._stderr_from[service.name] = self._files.size(service.name, "stderr.log")
        try:
            child, record = spawn(service, self._files, key, self._environment(service))
        except UnrecordedError as exc:
            return Outcome.failure(
                f"cannot record the started process in its pidfile, so it was ended: {exc}",
                code="CannotRecord",
            )
        except OSError as exc:
            return Outcome.failure(
                f"cannot run {service.command[0]}: {why_not_run(exc, service.working_directory)}",
                kind=ErrorKind.TERMINAL,
                code="CannotExecute",
            )
        previous = self._children.get(service.name)
        if previous is not None and previous.poll() is None:
            self._orphans.append(previous)
        self._children[service.name] = child
        started = time.monotonic()
        deadline = started + service.start_timeout
        detail = "no health check has run"
        while time.monotonic() < deadline:
            up = time.monotonic() - started
            if child.poll() is not None:
                return await self._exited(service, record, up)
            passed, detail = await check(service, self._environment(service))
            if passed and up >= service.start_seconds:
                self._passed[service.name] = record.pid
                return Outcome.success(f"started pid {record.pid}; {detail}")
            await anyio.sleep(_POLL)
        return Outcome.failure(
            f"pid {record.pid} not healthy within {service.start_timeout:g} s; {detail}",
            code="StartTimeout",
        )

    async def _exited(self, service: LocalServiceSettings, record: Record, up: float) -> Outcome:
        """A start whose process exited: failed, and what it forked (a command that
        daemonizes) ended now, not left running unwatched until the next attempt, or for
        ever once the retry budget escalates."""
        detail = f"{self._why_not_running(service.name)} after {up:.1f} s (pid {record.pid})"
        left = len(survivors(record))
        for _ in range(_SETTLE_POLLS):
            # What it forked may be mid-exec as it exits (`unproven`): look again once
            # that is over, or it is left running unwatched, for ever once escalated.
            if left or not unproven(record):
                break
            await anyio.sleep(_POLL)
            left = len(survivors(record))
        if left:
            ended = await self._end_survivors(service, "")
            detail += f"; it left {left} process{'es' if left > 1 else ''} running, " + (
                "now ended (a service must run in the foreground, not daemonize)"
                if ended.ok
                else ended.detail
            )
        return Outcome.failure(detail, code="Exited")

    async def _stop(self, service: LocalServiceSettings, record: Record) -> Outcome:
        signal_group(record, signal.SIGTERM)
        termed = time.monotonic()
        if await self._gone(record, service.stop_timeout):
            # The group had its SIGTERM with the main process: what is left of it gets
            # the rest of stop_timeout, so a stop still takes about stop_timeout at most.
            grace = max(0.0, termed + service.stop_timeout - time.monotonic())
            return await self._end_survivors(service, f"stopped pid {record.pid}", grace)
        signal_group(record, signal.SIGKILL)
        if await self._gone(record, service.stop_timeout):
            killed = f"killed pid {record.pid} after {service.stop_timeout:g} s"
            return await self._end_survivors(service, killed, 0.0)
        return Outcome.failure(f"pid {record.pid} survived SIGKILL", code="StopFailed")

    async def _end_survivors(
        self, service: LocalServiceSettings, detail: str, grace: float | None = None
    ) -> Outcome:
        """End what the last process left behind (SIGTERM, ``grace`` seconds, by
        default stop_timeout, then SIGKILL), then forget it: success with ``detail``, or a
        failure if something outlived SIGKILL."""
        record = self._files.read(service.name)
        if record is None:
            return Outcome.success(detail)
        note = ""
        grace = service.stop_timeout if grace is None else grace
        if termed := signal_survivors(record, signal.SIGTERM):
            if not await self._survivors_gone(record, grace, termed):
                killed = signal_survivors(record, signal.SIGKILL)
                if not await self._survivors_gone(record, service.stop_timeout, termed + killed):
                    left = ", ".join(map(str, survivors(record)))
                    return Outcome.failure(
                        f"pid {record.pid}'s children {left} survived SIGKILL", code="StopFailed"
                    )
                note = "; killed its children that outlived it"
            else:
                note = "; ended its children that outlived it"
        self._files.remove(service.name)
        return Outcome.success(detail + note)

    async def _survivors_gone(self, record: Record, seconds: float, signalled: list[int]) -> bool:
        """Whether, within ``seconds``, no survivor is left and those ``signalled`` exited."""
        deadline = time.monotonic() + seconds
        while survivors(record) or not all(map(exited, signalled)):
            if time.monotonic() >= deadline:
                return False
            await anyio.sleep(_POLL)
        return True

    async def _gone(self, record: Record, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while True:
            if self._running_record(record) is None:
                return True
            if time.monotonic() >= deadline:
                return False
            await anyio.sleep(_POLL)

    def _running_record(self, record: Record) -> Record | None:
        for child in self._children.values():
            if child.pid == record.pid:
                # Our own child is gone when reaped: between exit and zombie its
                # /proc entry already reads empty, and a Popen dropped unreaped
                # would leave a zombie behind.
                return record if child.poll() is None else None
        return record if still_running(record) else None

    @contextmanager
    def _lock(self, name: str, *, create: bool = True) -> Iterator[None]:
        """One changer per service across processes (`jarvis tick` beside the daemon).
        Without ``create``, only a lock file a change made (FileNotFoundError otherwise):
        an observe, perhaps by an operator's `jarvis status` as another user, must not
        leave a lock file the daemon cannot open."""
        if create:
            self._files.directory.mkdir(parents=True, exist_ok=True)
        with Path(self._files.path(name, "lock")).open("a" if create else "r") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    async def aclose(self) -> None:
        """Nothing to release: the processes are meant to outlive the daemon."""
