"""A send cut by `jarvis run`'s shutdown deadline is left to the next start, not recorded.

The send and its record are shielded from cancellation (a receiver that has a
notice must not get it again); the daemon bounds that shield by its shutdown
deadline, since past it a SIGKILL would cut them anyway. Cut, the delivery
ended with an UnboundLocalError instead of returning.
"""

from __future__ import annotations

import anyio
import pytest

from jarvis.loop.shutdown import Shutdown
from jarvis.notify.notice import Notice
from jarvis.store.memory_outbox import MemoryOutbox
from jarvis.store.outbox import PENDING
from tests.notify.test_delivery_isolation import T0, delivery, row

pytestmark = pytest.mark.anyio


class Hanging:
    """A receiver that never answers."""

    name = "brittle"

    async def send(self, notice: Notice) -> None:
        await anyio.sleep(3600)


async def test_a_send_cut_by_the_shutdown_deadline_leaves_its_row_pending() -> None:
    """The delivery returns at the deadline; the row waits, unsent, for the next start."""
    outbox = MemoryOutbox()
    await outbox.commit({}, [row("disk full"), row("oom")], T0)
    shutdown = Shutdown()
    cut = delivery()
    cut.send_timeout = 3600
    cut.shielded = lambda: shutdown.bound(shield=True)
    shutdown.begin(0.05)

    with anyio.fail_after(60):  # a hang guard, not a timing assertion
        sent = await cut.deliver_due(outbox, {"brittle": Hanging()})

    assert sent == 0
    assert [(r.status, r.attempts) for r in await outbox.rows()] == [(PENDING, 0), (PENDING, 0)]
