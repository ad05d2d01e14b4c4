"""Processes Jarvis started on this host: spawn, recognise, stop. Linux only (reads /proc).

Used by `jarvis.actuators.local.actuator`. A process is Jarvis's only when its
pidfile (written by `spawn`, under the state directory) names a pid whose
/proc entry still shows the command line *and* the start time recorded at
spawn: a pid the kernel reused, or a process that merely looks the same (one
an operator started by hand), is not ours and is never signalled. The start
time is what tells a reused pid apart from the original when the command
lines agree. Processes run in their own session, detached from the daemon,
so they outlive it and a restarted daemon finds them again by pidfile.

What a service forked (a shell's worker, a server's children, a daemon it
detached) may outlive its main process and keep the port or the files. Such
survivors are ended before a new copy starts, and only those Jarvis can prove
are the old service's: started after the main process and carrying the random
token `spawn` put in the service's environment (``_JARVIS_LOCAL_INSTANCE``,
inherited by every descendant), wherever they went: in the process group the
main process led, or in a session of their own (``setsid``, a daemon's double
fork). A group id alone would prove nothing (group numbers are reused once a
group is empty); the token does. Signals go through a pidfd opened before the
check, so a pid reused between the check and the signal is not hit.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from jarvis.config.local import LocalServiceSettings

_PROC = Path("/proc")
_GONE = frozenset({"Z", "X", "x"})
_PF_KTHREAD = 0x00200000
"""A kernel thread, in /proc/PID/stat's flags (field 9)."""
"""Process states of a process that has exited (a zombie waits to be reaped)."""
_SETTLE_SECONDS = 2.0
_LOGS = ("stdout.log", "stderr.log")
INSTANCE_VARIABLE = "_JARVIS_LOCAL_INSTANCE"
"""Set in each started service's environment to its pidfile's token. Not ``JARVIS_…``:
a `jarvis` command run by the service would refuse a variable no setting reads."""


class UnrecordedError(Exception):
    """`spawn` started the process but could not write its pidfile, so ended it."""


@dataclass(frozen=True, slots=True)
class Record:
    """What a pidfile holds: the process, how to recognise it, and which action made it."""

    pid: int
    cmdline: list[str]
    start_ticks: int
    """Field 22 of /proc/PID/stat: clock ticks after boot; unique per pid with the boot."""
    started_at: float
    """Wall-clock seconds, for the start grace after a daemon restart."""
    key: str | None
    """The idempotency key of the action that started it, if one did."""
    token: str | None = None
    """The service's ``_JARVIS_LOCAL_INSTANCE``: marks what it forked (None in old pidfiles)."""


def _live_stat(pid: int) -> list[str] | None:
    """The fields of ``/proc/PID/stat`` after the command name (the state first), or
    None when the process is gone: absent, unreadable, or exited (a zombie)."""
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name (field 2) is in parentheses and may hold spaces or ')'.
    fields = stat[stat.rfind(")") + 2 :].split()
    return None if not fields or fields[0] in _GONE else fields


def proc_identity(pid: int) -> tuple[list[str], int] | None:
    """The command line and start ticks of a live pid, or None when it is gone."""
    fields = _live_stat(pid)
    if fields is None:
        return None
    try:
        raw = (_PROC / str(pid) / "cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return [part.decode(errors="surrogateescape") for part in raw.split(b"\0")[:-1]], int(
        fields[19]
    )


def is_ours(record: Record) -> bool:
    """The pidfile's process is alive and is the one Jarvis started (not a reused pid)."""
    seen = proc_identity(record.pid)
    return seen is not None and seen == (record.cmdline, record.start_ticks)


def still_running(record: Record) -> bool:
    """The process is not yet gone (exited processes are zombies or absent).

    For waiting on a stop only, after `is_ours` held: by pid and start time,
    since an exiting process's command line already reads empty.
    """
    seen = proc_identity(record.pid)
    return seen is not None and seen[1] == record.start_ticks


class Pidfiles:
    """The state directory: one pidfile and two log files (and their rotated copies) per service."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, name: str, suffix: str) -> Path:
        return self.directory / f"{name}.{suffix}"

    def read(self, name: str) -> Record | None:
        """The service's record, or None when there is none or it cannot be read."""
        try:
            data = json.loads(self.path(name, "pid").read_text())
            return Record(
                pid=int(data["pid"]),
                cmdline=[str(part) for part in data["cmdline"]],
                start_ticks=int(data["start_ticks"]),
                started_at=float(data["started_at"]),
                key=None if data.get("key") is None else str(data["key"]),
                token=None if data.get("token") is None else str(data["token"]),
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def write(self, name: str, record: Record) -> None:
        """Replace the pidfile atomically and durably: a crash leaves the old or the new one."""
        target = self.path(name, "pid")
        temporary = target.with_suffix(".pid.tmp")
        with temporary.open("w") as handle:
            json.dump(asdict(record), handle)
            handle.flush()
            os.fsync(handle.fileno())
        temporary.replace(target)

    def remove(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(name, "pid").unlink()

    def mark_stopped(self, name: str, key: str) -> None:
        """Record that the service is meant to be stopped (by the action with ``key``)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path(name, "stopped").write_text(key)

    def clear_stopped(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(name, "stopped").unlink()

    def stopped(self, name: str) -> bool:
        return self.path(name, "stopped").exists()

    def over(self, name: str, max_bytes: int) -> bool:
        """One of the service's logs is past ``max_bytes``, due for `rotate`."""
        return any(self.size(name, suffix) > max_bytes for suffix in _LOGS)

    def rotate(self, name: str, max_bytes: int, backups: int) -> None:
        """Rotate each of the service's logs that is past ``max_bytes``: ``.1`` to ``.2``
        and so on (the oldest past ``backups`` goes), the log copied to ``.1``, then
        emptied in place. In place, since the service holds it open and writes on; it
        opened it for appending, so it writes at the new end, not past a hole. What it
        writes between the copy and the emptying (a moment) is lost. Of a log more than
        twice ``max_bytes`` (one from before rotation, a burst) only the last
        ``max_bytes`` are kept: copying it whole could take the disk rotation saves."""
        for suffix in _LOGS:
            log = self.path(name, suffix)
            try:
                size = log.stat().st_size
                if size <= max_bytes:
                    continue
                for older in range(backups - 1, 0, -1):
                    with contextlib.suppress(FileNotFoundError):
                        Path(f"{log}.{older}").replace(f"{log}.{older + 1}")
                start = 0 if size <= 2 * max_bytes else size - max_bytes
                _copy_and_empty(log, Path(f"{log}.1"), start)
            except FileNotFoundError:
                continue

    def size(self, name: str, suffix: str) -> int:
        """The file's size in bytes; 0 when it is not there."""
        try:
            return self.path(name, suffix).stat().st_size
        except FileNotFoundError:
            return 0

    def stderr_tail(self, name: str, limit: int = 300, since: int = 0) -> str:
        """The last line the service wrote to stderr after byte ``since`` (where its run
        began; from the start if the log has since been rotated), for an operator reading
        the event."""
        try:
            with self.path(name, "stderr.log").open("rb") as handle:
                end = handle.seek(0, os.SEEK_END)
                handle.seek(max(since if since <= end else 0, end - 4096))
                lines = handle.read().decode(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return lines[-1][-limit:] if lines else ""


def why_not_run(exc: OSError, working_directory: Path | None) -> str:
    """Why exec failed, for a service or its health command: a working directory that
    is not there is named as such (Python reports it as if the command were missing)."""
    if working_directory is not None and exc.filename == working_directory:
        return f"working directory {working_directory}: {exc.strerror}"
    return str(exc)


def _copy_and_empty(log: Path, copy: Path, start: int) -> None:
    """Copy ``log`` from byte ``start`` to ``copy`` (replacing it), taking what was written
    during the copy too, then truncate ``log``."""
    with log.open("rb") as source, copy.open("wb") as target:
        source.seek(start)
        while chunk := source.read(1 << 20):
            target.write(chunk)
        os.truncate(log, 0)


def spawn(
    service: LocalServiceSettings,
    files: Pidfiles,
    key: str | None,
    environment: dict[str, str],
) -> tuple[subprocess.Popen[bytes], Record]:
    """Start the service detached (own session, logs to files) with ``environment`` and
    record it in its pidfile.

    Nothing is awaited between the start and the pidfile, so a cancelled apply
    cannot leave a process Jarvis would not recognise. Raises OSError when the
    command cannot be executed, UnrecordedError when the pidfile cannot be written.
    """
    files.directory.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(16)
    with (
        files.path(service.name, _LOGS[0]).open("ab") as out,
        files.path(service.name, _LOGS[1]).open("ab") as err,
    ):
        child = subprocess.Popen(  # noqa: S603 - the operator's configured argv, no shell
            service.command,
            cwd=service.working_directory,
            env={**environment, INSTANCE_VARIABLE: token},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
            close_fds=True,
        )
    cmdline, ticks = _settled_identity(child.pid) or ([], -1)
    record = Record(child.pid, cmdline or list(service.command), ticks, time.time(), key, token)
    try:
        files.write(service.name, record)
    except OSError as exc:
        # Unrecorded, it would never be recognised again (a second copy would start
        # beside it): ended at once with its group. Our unreaped child: no reused pid.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)
        child.wait()
        raise UnrecordedError(str(exc)) from exc
    return child, record


def _settled_identity(pid: int) -> tuple[list[str], int] | None:
    """The new program's identity once exec has laid out its arguments.

    Popen returns when exec has closed the child's descriptors, which is before
    the kernel has set up the new argument area: /proc/PID/cmdline can read
    empty for a moment. Waiting here (milliseconds, without yielding) keeps the
    pidfile written before anything can cancel the caller. A child that
    already exited is None; it is recorded with the configured argv, and since
    it is not alive it never matches.
    """
    deadline = time.monotonic() + _SETTLE_SECONDS
    while True:
        seen = proc_identity(pid)
        if seen is None or seen[0] or time.monotonic() >= deadline:
            return seen
        time.sleep(0.002)


def signal_group(record: Record, signum: signal.Signals) -> bool:
    """Signal the process's session group if, checked just before, it is still ours."""
    if not is_ours(record):
        return False
    try:
        # Started in its own session, so it leads its process group: children
        # it forked (a shell's, a server's workers) go with it. One that moved
        # itself out of that group is signalled alone.
        if os.getpgid(record.pid) == record.pid:
            os.killpg(record.pid, signum)
        else:
            os.kill(record.pid, signum)
    except ProcessLookupError:
        return False
    return True


def survivors(record: Record) -> list[int]:
    """Live processes the record's service left, provably its own (see the module)."""
    if record.token is None:
        return []
    return [pid for pid in _pids() if _left_by(pid, record)]


def unproven(record: Record) -> list[int]:
    """Live processes started after the record's that `survivors` can neither claim nor
    clear: their environment reads empty, as a process's does while it is in the middle
    of exec (the new image's environment is not set up yet; measured here: 3 ms typically,
    over 20 ms at times). A service that daemonizes may be caught there just as its main
    process exits. Kernel threads, whose environment is always empty, are not counted."""
    if record.token is None:
        return []
    return [pid for pid in _pids() if _mid_exec(pid, record)]


def _mid_exec(pid: int, record: Record) -> bool:
    fields = _born_after(pid, record)
    if fields is None or int(fields[6]) & _PF_KTHREAD:
        return False
    try:
        return (_PROC / str(pid) / "environ").read_bytes() == b""
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False


def signal_survivors(record: Record, signum: signal.Signals) -> list[int]:
    """Signal each survivor, checked after its pidfd is open; the pids signalled."""
    sent: list[int] = []
    for pid in survivors(record):
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:  # gone meanwhile
            continue
        try:
            # Checked again with the pidfd open: the signal reaches this very process or none.
            if _left_by(pid, record):
                signal.pidfd_send_signal(pidfd, signum)
                sent.append(pid)
        except ProcessLookupError:
            pass
        finally:
            os.close(pidfd)
    return sent


def exited(pid: int) -> bool:
    """Whether ``pid`` has exited (a zombie, or reaped): not merely unrecognisable.

    A process killed releases its memory, and with it the environment that
    carries its token, before it closes its files: `survivors` stops naming it
    while it may still hold the port it listened on.
    """
    return _live_stat(pid) is None


def _pids() -> list[int]:
    return [int(entry.name) for entry in _PROC.iterdir() if entry.name.isdigit()]


def _left_by(pid: int, record: Record) -> bool:
    """``pid`` is alive, started after the record's process, and carries its token."""
    if _born_after(pid, record) is None:
        return False
    try:
        environ = (_PROC / str(pid) / "environ").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False
    return f"{INSTANCE_VARIABLE}={record.token}".encode() in environ.split(b"\0")


def _born_after(pid: int, record: Record) -> list[str] | None:
    """``pid``'s stat fields (`_live_stat`) if it is alive and started no earlier than the
    record's process; None otherwise."""
    fields = _live_stat(pid)
    if fields is None or len(fields) < 20 or int(fields[19]) < record.start_ticks:
        return None
    return fields
