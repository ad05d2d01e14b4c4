"""PID 1's duty, for `jarvis` started as the first process of a container with no init.

Called by `jarvis.cli.main` before anything else. The kernel hands every
orphaned process in a PID namespace to its PID 1, which must reap it: a
local service's worker that outlived its service and was ended by Jarvis
(`jarvis.actuators.local`), a health command's children, would otherwise stay
zombies for the container's life. Jarvis cannot reap them in the process that
runs it: waiting for any child would take the exit codes of the processes it
started and waits for itself. So, as PID 1, it forks: the child runs the
command, and PID 1 stays a small init, like tini: it passes on the signals that
stop or steer a process, reaps every process handed to it, and exits with the
child's status (128 + N for a child ended by signal N) when the child exits.
"""

from __future__ import annotations

import contextlib
import os
import signal
from types import FrameType

__all__ = ["init_if_pid1"]

_FORWARDED = (
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
)


def init_if_pid1() -> None:
    """As PID 1, fork: return in the child (which runs the command), serve as init in
    the parent and never return. Otherwise return at once."""
    if os.getpid() != 1:
        return
    child = os.fork()
    if child == 0:
        _foreground()
        return
    _serve(child)


def _foreground() -> None:
    """In a group of its own, made the terminal's foreground group if there is one: a
    Ctrl-C then reaches it once, from the terminal, not a second time passed on by init."""
    os.setpgid(0, 0)
    if not os.isatty(0):
        return
    # A background group that sets the terminal's group gets SIGTTOU unless it ignores it.
    previous = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
    try:
        with contextlib.suppress(OSError):
            os.tcsetpgrp(0, os.getpgrp())
    finally:
        signal.signal(signal.SIGTTOU, previous)


def _serve(child: int) -> None:
    def forward(signum: int, _frame: FrameType | None) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signum)

    for signum in _FORWARDED:
        signal.signal(signum, forward)
    while True:
        try:
            pid, status = os.wait()  # retried after a forwarded signal (PEP 475)
        except ChildProcessError:  # pragma: no cover - the child is ours until reaped
            os._exit(1)
        if pid == child:
            code = os.waitstatus_to_exitcode(status)
            # What remains in the namespace ends with it, as with any PID 1.
            os._exit(128 - code if code < 0 else code)
