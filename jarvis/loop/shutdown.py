"""One shutdown deadline, shared by every wait after SIGTERM.

`jarvis run` must exit 0 within 10 s of SIGTERM (Cloud Run sends SIGKILL
then). Each wait on the way out had its own bound (the outcome's flush the
statement timeout, the step-down and shutdown flushes 5 s each, the lease
release the renew deadline, the HTTP server its own), so with PostgreSQL
hanging they added up to about 30 s. Here they share one: `begin` (the
scheduler's stop) sets it from the signal, and every scope opened with `bound`
ends by it, those already open included. What it cuts off stays in the event
store's buffer. The loop's last flush tries the database once more (`settling`,
half a second); then the daemon spools what is left (`EventStore.park`) and
closes the store within `closing`, which ends ``grace`` seconds after the
signal: the waits get all of the grace but its last `CLOSING` second (at most
half of it).

The reconciler owns one `Shutdown`; its dispatcher, applier and scheduler, the
elector's step-down and the daemon's teardown all wait through it.
"""

from __future__ import annotations

import math
from types import TracebackType

import anyio

__all__ = ["CLOSING", "LOCK_GIVE_UP", "Bound", "Shutdown"]

CLOSING = 1.0
"""Seconds of the grace kept after the deadline for what cannot be left undone: spooling
what it cut off, closing the store and actuators. With the default grace (8 s) the
process has stopped 8 s after SIGTERM, its exit within Cloud Run's 10."""

LOCK_GIVE_UP = 0.5
"""Seconds before the deadline a SQLite write stops waiting for another process's lock
(`lock_wait`): it then fails as an outage and its flush spools by itself. Cut instead,
the aiosqlite call left a close behind that held the exit up 2 s more."""


class Shutdown:
    """The deadline every wait after a stop request shares; see the module docstring."""

    def __init__(self) -> None:
        self.deadline: float | None = None
        """The event loop's time by which everything waits no longer; None before `begin`."""
        self.end: float | None = None
        """The event loop's time by which the closing is done too: the grace's end."""
        self._scopes: set[anyio.CancelScope] = set()

    @property
    def begun(self) -> bool:
        return self.deadline is not None

    @property
    def left(self) -> float:
        """Seconds until the deadline (0 once passed); infinite before `begin`."""
        if self.deadline is None:
            return math.inf
        return max(0.0, self.deadline - anyio.current_time())

    @property
    def lock_wait(self) -> float:
        """How long a write begun now may wait for a SQLite lock: `LOCK_GIVE_UP` short of the
        deadline. Such a wait runs in a thread that no cancellation reaches."""
        return max(0.0, self.left - LOCK_GIVE_UP)

    def begin(self, grace: float) -> None:
        """Start the shutdown (once): every wait ends, and the closing too, within ``grace``
        seconds from now."""
        if self.deadline is not None:
            return
        now = anyio.current_time()
        self.end = now + grace
        self.deadline = now + max(grace - CLOSING, grace / 2)
        for scope in self._scopes:
            scope.deadline = min(scope.deadline, self.deadline)

    def bound(self, timeout: float = math.inf, *, shield: bool = False) -> Bound:
        """A scope that ends within ``timeout`` seconds and by the shutdown deadline, even one
        set while it is open; ``shield`` keeps outer cancellations out (a cleanup)."""
        # No clock read for the unbounded scopes the tick opens before any stop request.
        deadline = math.inf if timeout == math.inf else anyio.current_time() + timeout
        if self.deadline is not None:
            deadline = min(deadline, self.deadline)
        return Bound(anyio.CancelScope(shield=shield, deadline=deadline), self._scopes)

    def ended(self, scope: anyio.CancelScope) -> bool:
        """Whether ``scope`` (one of `bound`'s) ends at the shutdown deadline, not earlier."""
        return self.deadline is not None and scope.deadline >= self.deadline

    def settling(self, timeout: float) -> anyio.CancelScope:
        """A shielded scope for the loop's last flush: ``timeout`` seconds at most and, once
        the shutdown has begun, until halfway from the deadline to the grace's end. A
        database that answers still takes what the deadline cut off (the outcome of an apply
        that took all of it); one that hangs leaves the other half to spool it."""
        deadline = anyio.current_time() + timeout
        if self.deadline is not None and self.end is not None:
            deadline = min(deadline, (self.deadline + self.end) / 2)
        return anyio.CancelScope(shield=True, deadline=deadline)

    def closing(self) -> anyio.CancelScope:
        """A shielded scope that ends with the grace (unbounded before `begin`): for spooling
        what the deadline cut off and closing what is open."""
        return anyio.CancelScope(shield=True, deadline=math.inf if self.end is None else self.end)


class Bound:
    """`Shutdown.bound`'s scope while it is open: it swallows its own cancellation, as a
    `anyio.CancelScope` does (said by ``__exit__`` returning bool, which type checkers read)."""

    def __init__(self, scope: anyio.CancelScope, open_scopes: set[anyio.CancelScope]) -> None:
        self._scope = scope
        self._open = open_scopes

    def __enter__(self) -> anyio.CancelScope:
        self._open.add(self._scope)
        return self._scope.__enter__()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> bool:
        try:
            return self._scope.__exit__(exc_type, exc_val, exc_tb)
        finally:
            self._open.discard(self._scope)
