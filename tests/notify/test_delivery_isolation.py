"""One outbox row that cannot be sent never holds back the rows after it.

Twice a single notice stalled every notification: a channel raised something
other than `DeliveryError` (a header refusing a line break, an error page
that was not UTF-8), the round failed on that row, and every later round
failed on it again. Whatever a channel raises, and a row whose message
cannot be read, now costs that row an attempt, not the outbox.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

import pytest

from jarvis.loop.clock import VirtualClock
from jarvis.notify.alerts import Severity
from jarvis.notify.delivery import Delivery
from jarvis.notify.notice import Notice
from jarvis.store.memory_outbox import MemoryOutbox
from jarvis.store.outbox import FAILED, SENT
from jarvis.telemetry.metrics import Metrics

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class Brittle:
    """A channel with a bug: it raises a plain exception for a notice about ``poison``."""

    name = "brittle"

    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send(self, notice: Notice) -> None:
        if notice.cause == "poison":
            raise KeyError("summary")
        self.sent.append(notice.cause)


def row(cause: str, **message: Any) -> dict[str, Any]:
    notice = Notice(
        channel="brittle",
        incident=f"inc-{cause}",
        action="trigger",
        sequence=1,
        severity=Severity.CRITICAL,
        cause=cause,
        provider="sim",
        alerts=(),
        since=T0,
    )
    return {
        "dedup_key": notice.key,
        "channel": "brittle",
        "incident": notice.incident,
        "action": "trigger",
        "message": {**notice.to_json(), **message},
    }


def delivery(max_attempts: int = 3) -> Delivery:
    return Delivery(
        clock=VirtualClock(T0),
        metrics=Metrics(),
        max_attempts=max_attempts,
        backoff_base=1.0,
        backoff_max=60.0,
        send_timeout=5.0,
        rng=random.Random(0),  # noqa: S311 -- backoff jitter, seeded for the test
    )


async def test_a_channel_that_raises_costs_its_row_an_attempt_and_the_rest_are_sent() -> None:
    """A bug in a channel for one notice retries that row; the rows after it go out."""
    outbox = MemoryOutbox()
    await outbox.commit({}, [row("poison"), row("disk full")], T0)
    channel = Brittle()

    sent = await delivery().deliver_due(outbox, {"brittle": channel})

    assert sent == 1
    assert channel.sent == ["disk full"]
    poison, healthy = await outbox.rows()
    assert healthy.status == SENT
    assert (poison.status, poison.attempts) == ("pending", 1)
    assert "KeyError" in poison.last_error


async def test_a_row_whose_message_cannot_be_read_fails_and_the_rest_are_sent() -> None:
    """A damaged row (its notice unreadable) is marked failed at once; the others go out."""
    outbox = MemoryOutbox()
    await outbox.commit({}, [row("damaged", severity="no-such"), row("disk full")], T0)
    channel = Brittle()

    sent = await delivery().deliver_due(outbox, {"brittle": channel})

    assert sent == 1
    damaged, healthy = await outbox.rows()
    assert healthy.status == SENT
    assert damaged.status == FAILED
    assert "cannot be read" in damaged.last_error
