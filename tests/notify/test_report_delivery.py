"""The daily report's delivery: once a day at a local time, email with charts and Slack.

Real PostgreSQL, loopback Slack and aiosmtpd; a virtual clock, moved by hand.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from zoneinfo import ZoneInfo

import pytest
from structlog.testing import capture_logs

from jarvis.app import build_report_sender
from jarvis.config import Settings
from jarvis.config.report import ReportSettings
from jarvis.loop.clock import VirtualClock
from jarvis.model import Event, EventKind
from jarvis.report.deliver import CATCH_UP, ReportSender, next_check, report_day, unsent
from jarvis.store import EventStore, StoreError
from tests.notify.conftest import notify_settings
from tests.notify.receivers import Receivers
from tests.store.tcp_proxy import TcpProxy

pytestmark = pytest.mark.anyio

BERLIN = ZoneInfo("Europe/Berlin")
DAY = datetime(2026, 1, 4, tzinfo=UTC)  # the day reported; 08:00 in Berlin is 07:00 UTC


def applied(n: int) -> Event:
    return Event(
        kind=EventKind.ACTION_APPLIED,
        ts=DAY + timedelta(hours=3 + n),
        idempotency_key=f"applied:{n}",
        resource=f"sim://svc-{n}",
        action_kind="restart",
        policy="heal",
        reason="unhealthy",
        action_id=f"a{n}",
    )


def settings(pg_url: str, receivers: Receivers, recipients: list[str] | None = None) -> Settings:
    return Settings(
        database_url=pg_url,
        notify=notify_settings(receivers, recipients),
        report=ReportSettings(deliver_at=time(8, 0), timezone="Europe/Berlin"),
    )


async def sender_at(
    pg_url: str, receivers: Receivers, now: datetime, recipients: list[str] | None = None
) -> tuple[ReportSender, EventStore, VirtualClock]:
    store = await EventStore.connect(pg_url, auto_migrate=True)
    clock = VirtualClock(now)
    sender = build_report_sender(settings(pg_url, receivers, recipients), store, clock)
    assert sender is not None
    return sender, store, clock


@pytest.fixture
def secrets(receivers: Receivers, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_SLACK_URL", receivers.slack_url)
    monkeypatch.setenv("TEST_PD_KEY", "R0UT1NGK3Y0000000000000000000001")


def html_of(message: EmailMessage) -> EmailMessage:
    rich = message.get_body(preferencelist=("related", "html"))
    assert isinstance(rich, EmailMessage)
    return rich


@pytest.mark.usefixtures("secrets")
async def test_the_report_goes_out_once_at_the_local_time_and_never_again_after_a_restart(
    pg_url: str, receivers: Receivers
) -> None:
    sender, store, clock = await sender_at(pg_url, receivers, DAY + timedelta(days=1, hours=6))
    try:
        store.append([applied(n) for n in range(3)])
        await store.flush()
        assert await sender.check() is None  # 07:00 in Berlin: not yet
        clock.jump(DAY + timedelta(days=1, hours=7))
        assert await sender.check() == date(2026, 1, 4)
        assert await sender.check() is None
    finally:
        await store.aclose()

    (message,) = receivers.emails
    assert message["Subject"] == "Jarvis daily report, 2026-01-04 (UTC)"
    assert parsedate_to_datetime(str(message["Date"])).tzinfo is not None
    assert str(message["Message-ID"]).endswith("@example.com>")
    plain = message.get_body(preferencelist=("plain",))
    assert plain is not None
    assert "| restart | 3 |" in plain.get_content()
    related = html_of(message)
    page = next(p for p in related.walk() if p.get_content_type() == "text/html")
    images = [p for p in related.walk() if p.get_content_type() == "image/png"]
    assert "data:image" not in page.get_content()
    assert len(images) >= 1
    for image in images:
        cid = str(image["Content-ID"]).strip("<>")
        assert f'src="cid:{cid}"' in page.get_content()
        assert image.get_content().startswith(b"\x89PNG\r\n\x1a\n")
    (slack,) = receivers.slack
    assert slack["blocks"][0]["text"]["text"] == "Jarvis daily report, 2026-01-04 (UTC)"
    assert "Actions: 3 applied, 0 failed, 0 blocked" in slack["blocks"][1]["text"]["text"]

    # A restart later that day finds the marker and sends nothing; the next day sends.
    later = DAY + timedelta(days=1, hours=11)
    again, store, clock = await sender_at(pg_url, receivers, later)
    try:
        assert await again.check() is None
        clock.jump(DAY + timedelta(days=2, hours=7))
        assert await again.check() == date(2026, 1, 5)
        sent = await store.events(kinds=[EventKind.REPORT_SENT])
    finally:
        await store.aclose()
    assert [e.payload["day"] for e in sent] == ["2026-01-04", "2026-01-05"]
    assert (len(receivers.emails), len(receivers.slack)) == (2, 2)


@pytest.mark.usefixtures("secrets")
async def test_a_day_missed_while_the_database_was_away_is_sent_when_it_returns(
    pg_url: str, pg_proxy: TcpProxy, receivers: Receivers
) -> None:
    """The database away through one delivery time: its day goes out with the next one."""
    sender, store, clock = await sender_at(
        pg_proxy.url_for(pg_url), receivers, DAY + timedelta(days=1, hours=7)
    )
    try:
        assert await sender.check() == date(2026, 1, 4)
        await pg_proxy.stop()
        clock.jump(DAY + timedelta(days=2, hours=7))  # the 5th is due: the database is away
        with pytest.raises(StoreError):
            await sender.check()
        clock.jump(DAY + timedelta(days=3, hours=7, minutes=30))  # back the next morning
        await pg_proxy.start()
        assert await sender.check() == date(2026, 1, 6)
        sent = await store.events(kinds=[EventKind.REPORT_SENT])
    finally:
        await store.aclose()
    assert [e.payload["day"] for e in sent] == ["2026-01-04", "2026-01-05", "2026-01-06"]
    subjects = [m["Subject"] for m in receivers.emails]
    assert subjects == [f"Jarvis daily report, 2026-01-0{d} (UTC)" for d in (4, 5, 6)]


def test_missed_days_go_out_up_to_a_week_back_and_none_before_the_first_report() -> None:
    """The days after the last one sent, at most `CATCH_UP`; a first report sends only its day."""
    due = date(2026, 1, 20)
    assert unsent(due, set()) == [due]
    assert unsent(due, {due}) == []
    assert unsent(due, {date(2026, 1, 18)}) == [date(2026, 1, 19), due]
    week = unsent(due, {date(2025, 12, 1)})
    assert week == [due - timedelta(days=n) for n in reversed(range(CATCH_UP))]


@pytest.mark.usefixtures("secrets")
async def test_a_report_recipient_refused_at_rcpt_is_warned_and_the_others_get_it_once(
    pg_url: str, receivers: Receivers
) -> None:
    """A refused address is logged as a warning naming it; the accepted one is not mailed twice."""
    receivers.unknown_mailboxes.add("gone@example.com")
    now = DAY + timedelta(days=1, hours=7)
    sender, store, _ = await sender_at(
        pg_url, receivers, now, ["oncall@example.com", "gone@example.com"]
    )
    try:
        with capture_logs() as logs:
            assert await sender.check() == date(2026, 1, 4)
    finally:
        await store.aclose()

    assert receivers.envelopes == [["oncall@example.com"]]
    (warning,) = [e for e in logs if e.get("channel") == "email"]
    assert warning["log_level"] == "warning"
    assert warning["event"] == "daily report not sent to every recipient"
    assert any("gone@example.com 550 5.1.1" in r for r in warning["refused"])


@pytest.mark.usefixtures("secrets")
async def test_a_report_recipient_greylisted_at_rcpt_gets_it_on_a_retry_and_only_they_do(
    pg_url: str, receivers: Receivers
) -> None:
    """A 450 at RCPT TO: the report is sent again to that address alone, as the same message."""
    receivers.greylisted["slow@example.com"] = 2
    receivers.unknown_mailboxes.add("gone@example.com")
    now = DAY + timedelta(days=1, hours=7)
    sender, store, _ = await sender_at(
        pg_url, receivers, now, ["oncall@example.com", "gone@example.com", "slow@example.com"]
    )
    try:
        with capture_logs() as logs:
            assert await sender.check() == date(2026, 1, 4)
    finally:
        await store.aclose()

    assert receivers.envelopes == [["oncall@example.com"], ["slow@example.com"]]
    first, again = receivers.emails
    assert first["Message-ID"] == again["Message-ID"]
    email = [e for e in logs if e.get("channel") == "email"]
    assert [e["event"] for e in email] == [
        "daily report not sent to every recipient",
        "daily report not sent",
        "daily report sent",
    ]
    partial = email[0]
    assert partial["log_level"] == "warning"
    assert any("gone@example.com 550" in r for r in partial["refused"])
    assert any("slow@example.com 450" in r for r in partial["refused"])
    assert partial["retrying"] == ["slow@example.com"]
    assert email[-1]["to"] == ["slow@example.com"]


@pytest.mark.usefixtures("secrets")
async def test_mentions_and_links_in_a_resource_name_reach_the_slack_summary_as_text(
    pg_url: str, receivers: Receivers
) -> None:
    """`<!channel>` and `<url|label>` in a resource name are escaped: Slack pings no one."""
    hostile = "sim://svc <!channel> & <http://evil.example|click>"
    saving = Event(
        kind=EventKind.ACTION_APPLIED,
        ts=DAY + timedelta(hours=3),
        idempotency_key="applied:hostile",
        resource=hostile,
        action_kind="scale",
        policy="cost",
        reason="<!channel> idle <http://evil.example|click>",
        payload={"params": {"cost_delta_per_hour": -1.5}},
        action_id="a-hostile",
    )
    sender, store, _ = await sender_at(pg_url, receivers, DAY + timedelta(days=1, hours=7))
    try:
        store.append([saving])
        await store.flush()
        assert await sender.check() == date(2026, 1, 4)
    finally:
        await store.aclose()

    (body,) = receivers.slack
    texts = [body["text"], body["blocks"][1]["text"]["text"]]
    assert not [t for t in texts if "<!" in t or "<http" in t]
    for text in texts:
        assert (
            "Biggest saving: sim://svc &lt;!channel&gt; &amp; "
            "&lt;http://evil.example|click&gt; scale" in text
        )


def test_the_next_check_is_the_next_local_delivery_time_across_a_dst_change() -> None:
    at = time(8, 0)
    # The night of 29 March 2026 Berlin moves from UTC+1 to UTC+2.
    assert next_check(datetime(2026, 3, 28, 7, 0, tzinfo=UTC), at, BERLIN) == datetime(
        2026, 3, 29, 6, 0, tzinfo=UTC
    )
    assert next_check(datetime(2026, 3, 28, 6, 59, tzinfo=UTC), at, BERLIN) == datetime(
        2026, 3, 28, 7, 0, tzinfo=UTC
    )


def test_a_zone_ahead_of_utc_waits_for_the_utc_day_to_end_before_reporting_it() -> None:
    """East of UTC, the day before the local date is reported once it has ended."""
    tokyo, at = ZoneInfo("Asia/Tokyo"), time(8, 0)
    # 08:00 on 6 January in Tokyo is 23:00 UTC on the 5th: the 5th has an hour to go.
    assert report_day(datetime(2026, 1, 5, 23, 0, tzinfo=UTC), at, tokyo) is None
    assert report_day(datetime(2026, 1, 6, 0, 0, tzinfo=UTC), at, tokyo) == date(2026, 1, 5)
    # The next local morning reports the next day: none is skipped.
    assert report_day(datetime(2026, 1, 6, 23, 0, tzinfo=UTC), at, tokyo) is None
    assert report_day(datetime(2026, 1, 7, 0, 0, tzinfo=UTC), at, tokyo) == date(2026, 1, 6)


def test_a_report_channel_without_its_notify_section_is_a_config_error() -> None:
    with pytest.raises(ValueError, match=r"\[notify.slack\] is unset"):
        Settings(
            report=ReportSettings(deliver_at=time(8, 0), channels=["slack"]),
        )
    with pytest.raises(ValueError, match="unknown time zone"):
        ReportSettings(timezone="Mars/Olympus")
