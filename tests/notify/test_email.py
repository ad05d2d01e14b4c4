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


def _email_counts(rig: Rig) -> dict[str, float]:
    return {
        outcome: rig.metrics.notifications.labels(channel="email", outcome=outcome)._value.get()
        for outcome in ("sent", "partial", "retried", "failed")
    }


async def test_a_recipient_greylisted_at_rcpt_gets_it_on_a_retry_and_nobody_gets_it_twice(
    make_rig: RigFactory, receivers: Receivers
) -> None:
    """A 450 at RCPT TO for one address: the retry goes to that address alone, same message."""
    receivers.greylisted["slow@example.com"] = 1
    rig = await make_rig(recipients=["oncall@example.com", "slow@example.com"])
    await record(rig, escalation("sim://ai-dawg-ai-brain", rig.clock.now()))
    with capture_logs() as logs:
        await rig.rounds(10 * 60, step=1.0)

    assert receivers.envelopes == [["oncall@example.com"], ["slow@example.com"]]
    first, again = receivers.emails
    assert first["Message-ID"] == again["Message-ID"]
    assert again["To"] == first["To"] == "oncall@example.com, slow@example.com"
    (row,) = [r for r in await rig.outbox.rows() if r.channel == "email"]
    assert (row.status, row.attempts, row.last_error) == ("sent", 2, "")
    assert _email_counts(rig) == {"sent": 1, "partial": 0, "retried": 1, "failed": 0}
    (warning,) = [e for e in logs if e.get("channel") == "email"]
    assert warning["outcome"] == "retried"
    assert "slow@example.com 450" in warning["error"]


async def test_only_the_greylisted_recipient_is_retried_and_a_refused_one_stays_recorded(
    make_rig: RigFactory, receivers: Receivers
) -> None:
    """450 for one, 550 for another: only the 450 is tried again; the row keeps the 550."""
    receivers.greylisted["slow@example.com"] = 2
    receivers.unknown_mailboxes.add("gone@example.com")
    recipients = ["oncall@example.com", "gone@example.com", "slow@example.com"]
    rig = await make_rig(recipients=recipients)
    await record(rig, escalation("sim://ai-dawg-ai-brain", rig.clock.now()))
    await rig.rounds(10 * 60, step=1.0)

    assert receivers.envelopes == [["oncall@example.com"], ["slow@example.com"]]
    (row,) = [r for r in await rig.outbox.rows() if r.channel == "email"]
    assert (row.status, row.attempts) == ("sent", 3)
    assert "gone@example.com 550" in row.last_error
    assert "slow@example.com" not in row.last_error
    assert _email_counts(rig) == {"sent": 0, "partial": 1, "retried": 2, "failed": 0}


async def test_a_recipient_greylisted_past_the_last_attempt_is_recorded_as_not_reached(
    make_rig: RigFactory, receivers: Receivers
) -> None:
    """Still refused after every attempt: sent (the others have it), naming who never got it."""
    receivers.greylisted["slow@example.com"] = 1000
    rig = await make_rig(recipients=["oncall@example.com", "slow@example.com"])
    await record(rig, escalation("sim://ai-dawg-ai-brain", rig.clock.now()))
    await rig.rounds(30 * 60, step=1.0)

    assert receivers.envelopes == [["oncall@example.com"]]
    (row,) = [r for r in await rig.outbox.rows() if r.channel == "email"]
    assert (row.status, row.attempts) == ("sent", 10)
    assert "slow@example.com" in row.last_error
    assert "450" in row.last_error
    assert _email_counts(rig) == {"sent": 0, "partial": 1, "retried": 9, "failed": 0}


async def test_starttls_required_by_the_settings_but_not_offered_fails_at_once_saying_so(
    make_rig: RigFactory, receivers: Receivers
) -> None:
    """A server without STARTTLS, which the settings require: one attempt, its reason recorded."""
    rig = await make_rig(starttls=True)
    await record(rig, escalation("sim://ai-dawg-ai-brain", rig.clock.now()))
    await rig.rounds(40, step=1.0)

    assert receivers.emails == []
    (row,) = [r for r in await rig.outbox.rows() if r.channel == "email"]
    assert (row.status, row.attempts) == ("failed", 1)
    assert row.last_error == "email refused: SMTP STARTTLS extension not supported by server."
