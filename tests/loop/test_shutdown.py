"""The one shutdown deadline: every wait opened through it ends by it, even one opened first."""

from __future__ import annotations

import anyio
import pytest

from jarvis.loop.shutdown import CLOSING, Shutdown

pytestmark = pytest.mark.anyio

HANG = 3600.0
"""A wait nothing else would end."""


async def test_a_wait_open_before_the_stop_ends_by_its_deadline() -> None:
    """`begin` brings in the deadline of a scope already waiting (the outcome's flush)."""
    shutdown = Shutdown()
    with anyio.fail_after(60):  # a hang guard, not a timing assertion
        async with anyio.create_task_group() as group:
            group.start_soon(_begin_soon, shutdown, 0.05)
            with shutdown.bound(shield=True) as scope:
                await anyio.sleep(HANG)
    assert scope.cancelled_caught


async def _begin_soon(shutdown: Shutdown, grace: float) -> None:
    await anyio.sleep(0.01)
    shutdown.begin(grace)


async def test_a_wait_opened_after_the_deadline_ends_at_once() -> None:
    """Past the deadline every later wait (the lease release, the HTTP stop) gets no time."""
    shutdown = Shutdown()
    shutdown.begin(0)
    with anyio.fail_after(60), shutdown.bound(HANG, shield=True) as scope:
        await anyio.sleep(HANG)
    assert scope.cancelled_caught


async def test_a_shielded_wait_outlives_an_outer_cancellation() -> None:
    """A cleanup's scope keeps what cancels the task group out, up to the deadline."""
    shutdown = Shutdown()
    finished = False
    with anyio.CancelScope() as outer:
        outer.cancel()
        with shutdown.bound(shield=True):
            await anyio.sleep(0.01)
            finished = True
    assert finished


async def test_the_first_stop_sets_the_deadline_and_the_closing_ends_with_the_grace() -> None:
    """A second signal moves nothing; the waits end `CLOSING` before the grace does."""
    shutdown = Shutdown()
    assert not shutdown.begun
    shutdown.begin(8)
    deadline, end = shutdown.deadline, shutdown.end
    shutdown.begin(8)
    assert (shutdown.deadline, shutdown.end) == (deadline, end)
    assert deadline is not None and end is not None
    assert end - deadline == pytest.approx(CLOSING)
    with shutdown.closing() as scope:
        assert scope.deadline == end


async def test_a_short_grace_keeps_half_for_the_waits() -> None:
    """A grace below two `CLOSING`s is shared half and half, never a deadline in the past."""
    shutdown = Shutdown()
    before = anyio.current_time()
    shutdown.begin(1)
    assert shutdown.deadline is not None and shutdown.end is not None
    assert shutdown.deadline - before >= 0.5
    assert shutdown.end - shutdown.deadline <= 0.5 + 1e-6
