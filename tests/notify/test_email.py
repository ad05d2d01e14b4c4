"""Alert email over real SMTP (aiosmtpd on loopback): recipients the server refuses, headers."""

from __future__ import annotations

from email.utils import parsedate_to_datetime

import pytest
from structlog.testing import capture_logs

from tests.notify.conftest import Rig, RigFactory
from tests.notify.receivers import Receivers
from tests.notify.test_delivery import escalation, record

pytestmark = pytest.mark.anyio


async def test_a_recipient_refused_at_rcpt_is_recorded_and_told_while_the_others_get_it_once(
    make_rig: RigFactory, receivers: Receivers
) -> None:
    """One address refused at RCPT TO: the rest get it once; the row and a warning name it."""
    receivers.unknown_mailboxes.add("gone@example.com")
    rig = await make_rig(recipients=["oncall@example.com", "gone@example.com"])
    await record(rig, escalation("sim://ai-dawg-ai-brain", rig.clock.now()))
    with capture_logs() as logs:
        await rig.rounds(10 * 60, step=1.0)

    # Taken once, for the accepted recipient: never sent again to those who have it.
    assert receivers.envelopes == [["oncall@example.com"]]
    (row,) = [r for r in await rig.outbox.rows() if r.channel == "email"]
    assert (row.status, row.attempts) == ("sent", 1)
    assert "gone@example.com" in row.last_error
    assert "550 5.1.1" in row.last_error
    assert "User unknown" in row.last_error
    assert "oncall@example.com" not in row.last_error
    counts = {
        outcome: rig.metrics.notifications.labels(channel="email", outcome=outcome)._value.get()
        for outcome in ("sent", "partial", "retried", "failed")
    }
    assert counts == {"sent": 0, "partial": 1, "retried": 0, "failed": 0}
    (warning,) = [e for e in logs if e.get("channel") == "email"]
    assert warning["log_level"] == "warning"
    assert warning["outcome"] == "partial"
    assert "gone@example.com" in warning["error"]


async def test_an_alert_email_has_a_date_and_one_message_id_on_the_senders_domain_across_retries(
    rig: Rig, receivers: Receivers
) -> None:
    """A retried alert email keeps its Message-ID (the outbox row's), on the sender's domain."""
    receivers.lose_smtp_replies(1)
    await record(rig, escalation("sim://ai-dawg-ai-brain", rig.clock.now()))
    await rig.rounds(10 * 60, step=1.0)

    first, again = receivers.emails
    (row,) = [r for r in await rig.outbox.rows() if r.channel == "email"]
    assert (row.status, row.attempts) == ("sent", 2)
    for message in (first, again):
        assert parsedate_to_datetime(str(message["Date"])).tzinfo is not None
        assert str(message["Message-ID"]).endswith("@example.com>")
    assert first["Message-ID"] == again["Message-ID"]
    assert first["Message-ID"] != first["References"]
