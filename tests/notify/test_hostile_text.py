"""Outside text in alerts (reasons, resource names, error texts) reaching the real channels."""

from __future__ import annotations

from datetime import datetime

import pytest

from jarvis.model import Event, EventKind
from tests.notify.conftest import Rig
from tests.notify.receivers import Receivers
from tests.notify.test_delivery import record

pytestmark = pytest.mark.anyio


def escalation(resource: str, reason: str, at: datetime) -> Event:
    return Event(
        kind=EventKind.ACTION_ESCALATED,
        ts=at,
        idempotency_key=f"esc:{resource}",
        resource=resource,
        action_kind="restart",
        policy="heal",
        reason=reason,
        payload={"attempts": 3, "last_error": "exit 137"},
        action_id=f"a-{resource}",
    )


async def test_a_reason_with_line_breaks_is_mailed_under_a_one_line_subject(
    rig: Rig, receivers: Receivers
) -> None:
    """A reason carrying CR/LF becomes one Subject line: no injected header, nothing stuck."""
    reason = "OOMKilled\r\nBcc: attacker@evil.example\r\n\r\nsee the runbook"
    await record(rig, escalation("sim://ai-dawg-ai-brain", reason, rig.clock.now()))
    await rig.rounds(60, step=1.0)

    (message,) = receivers.emails
    assert message["Subject"] == (
        "[CRITICAL] sim://ai-dawg-ai-brain: restart escalated — "
        "OOMKilled Bcc: attacker@evil.example see the runbook"
    )
    assert message["Bcc"] is None
    assert {r.status for r in await rig.outbox.rows()} == {"sent"}
