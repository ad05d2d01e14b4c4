"""Outside text in alerts (reasons, resource names, error texts) reaching the real channels."""

from __future__ import annotations

from datetime import datetime
from typing import Any

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


def _slack_mrkdwn(body: dict[str, Any]) -> list[str]:
    """Every text of a Slack body that Slack parses for mentions and links."""
    texts = [body["text"]]
    for block in body["blocks"]:
        if block.get("text", {}).get("type") == "mrkdwn":
            texts.append(block["text"]["text"])
        texts.extend(e["text"] for e in block.get("elements", []) if e.get("type") == "mrkdwn")
    return texts


async def test_mentions_and_links_in_a_reason_reach_slack_as_text(
    rig: Rig, receivers: Receivers
) -> None:
    """`<!channel>`, `<@U…>` and `<url|label>` in a reason are escaped, so Slack pings no one."""
    reason = "<!channel> <@U0123ABC> disk full & <http://evil.example|open the runbook>"
    await record(rig, escalation("sim://ai-dawg-ai-brain", reason, rig.clock.now()))
    await rig.rounds(60, step=1.0)

    (body,) = receivers.slack
    texts = _slack_mrkdwn(body)
    assert not [t for t in texts if "<!" in t or "<@" in t or "<http" in t]
    assert any(
        "&lt;!channel&gt; &lt;@U0123ABC&gt; disk full &amp; "
        "&lt;http://evil.example|open the runbook&gt;" in t
        for t in texts
    )
