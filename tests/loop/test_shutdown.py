"""The one shutdown deadline: every wait opened through it ends by it, even one opened first,
and a task beside the loop that shields its work (a prune) ends by it too."""

from __future__ import annotations

from datetime import timedelta

import anyio
import pytest

from jarvis.config.sections import RetentionSettings
from jarvis.loop.clock import VirtualClock
from jarvis.loop.retention import Pruner
from jarvis.loop.shutdown import CLOSING, Shutdown
from jarvis.store import EventStore, upgrade
from tests.store.tcp_proxy import TcpProxy

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


@pytest.mark.timeout(300)  # before: the shielded prune waited out the statement timeout
async def test_a_prune_on_a_frozen_database_ends_by_the_shutdown_deadline(
    pg_url: str, pg_proxy: TcpProxy
) -> None:
    """A prune in flight beside the loop, shielded from cancellation, is cut by the
    shutdown deadline when the daemon wires its scope to it, as `jarvis run` does."""
    await upgrade(pg_url)
    store = await EventStore.connect(pg_proxy.url_for(pg_url), statement_timeout=600)
    shutdown = Shutdown()
    pruner = Pruner(store, RetentionSettings(), VirtualClock(), horizon=timedelta(hours=24))
    pruner.shielded = lambda: shutdown.bound(shield=True)
    try:
        await store.ping()  # a pooled connection, which the freeze keeps open
        pg_proxy.freeze()
        with anyio.fail_after(120):  # a hang guard, not a timing assertion
            async with anyio.create_task_group() as group:
                group.start_soon(pruner.run)
                # The prune's statement reached the frozen proxy: the prune is in its shielded
                # scope. (A half-second sleep here, on a loaded machine, could end first; the
                # cancel then caught the prune outside its shield and the test proved nothing.)
                await pg_proxy.holding()
                shutdown.begin(0.5)
                group.cancel_scope.cancel()
    finally:
        pg_proxy.thaw()
        await store.aclose()
