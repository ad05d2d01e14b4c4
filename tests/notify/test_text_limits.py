"""Notification texts within each channel's documented limits, their counts intact, for any
resource names: hostile ones full of ``&<>`` (which Slack's escaping lengthens), unicode,
control characters, very long ones. Property tests through the real channels (Slack's
webhook, PagerDuty's Events API, SMTP) against the loopback receivers."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import anyio
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from jarvis.model import Event, EventKind
from jarvis.notify.alerts import Severity, changes_for
from jarvis.notify.channels import Email, PagerDuty, SlackWebhook
from jarvis.notify.groups import Grouper, Route, Timing
from jarvis.notify.notice import Notice
from tests.notify.conftest import ROUTING_KEY
from tests.notify.receivers import Receivers

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)

# Limits as the APIs document them, not as the code under test states them.
SLACK_SECTION = 3000
SLACK_HEADER = 150
SLACK_TEXT = 40_000  # Slack truncates a message's text past this
PAGERDUTY_SUMMARY = 1024

# ``#`` is left out of names: each resource carries ``#N#`` right after its scheme (of at
# most 20 characters, so within the 200 an end is cut to), which finds it in a text.
HOSTILE = st.one_of(
    st.sampled_from("&<>"),
    st.characters(exclude_characters="#", exclude_categories=["Cs"]),
)
NAME = st.tuples(st.text(HOSTILE, max_size=30), st.sampled_from("&<>é\x00 "), st.integers(0, 400))
NAMES = st.lists(NAME.map(lambda t: t[0] + t[1] * t[2]), min_size=1, max_size=30)
MARKER = re.compile(r"#(\d+)#")


@pytest.fixture(scope="module")
def loopback() -> Iterator[Receivers]:
    """One set of receivers for every example: each reads what the last send delivered."""
    server = Receivers()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def escalation(resource: str, cause: str, n: int, reason: str = "3 failed attempts") -> Event:
    return Event(
        kind=EventKind.ACTION_ESCALATED,
        ts=T0,
        idempotency_key=f"esc:{n}",
        resource=resource,
        action_kind="restart",
        policy="heal",
        reason=reason,
        payload={"attempts": 3, "cause": cause},
        action_id=f"a-{n}",
    )


def healthy(resource: str, n: int) -> Event:
    return Event(
        kind=EventKind.RESOURCE_CHANGED,
        ts=T0,
        idempotency_key=f"healthy:{n}",
        resource=resource,
        payload={"health": "healthy"},
    )


def notices(
    scheme: str, cause: str, names: list[str], reason: str = "3 failed attempts"
) -> tuple[Notice, Notice]:
    """The trigger and the resolve a grouper sends for one incident of ``names`` (resources
    ``scheme://#N#name``, which escalate together and end in turn), as the outbox keeps them."""
    resources = [f"{scheme}://#{n}#{name}" for n, name in enumerate(names)]
    grouper = Grouper([Route("slack", frozenset(Severity))], Timing())
    sent: list[Notice] = []
    for step, events in enumerate(
        [
            [escalation(r, cause, n, reason) for n, r in enumerate(resources)],
            [healthy(r, n) for n, r in enumerate(resources)],
        ]
    ):
        now = T0 + timedelta(minutes=10 * step)
        for event in events:
            for change in changes_for(event):
                grouper.ingest(change, now)
        sent += grouper.due(now + timedelta(minutes=1))
    assert [notice.action for notice in sent] == ["trigger", "resolve"]
    trigger, resolve = (Notice.from_json(notice.to_json()) for notice in sent)
    assert len(resolve.ended) == len(names)
    return trigger, resolve


def deliver(receivers: Receivers, *notices: Notice) -> None:
    """Send each notice on the three real channels; a refusal raises."""
    slack = SlackWebhook(url=receivers.slack_url, timeout=20.0)
    pagerduty = PagerDuty(
        url=receivers.pagerduty_url, routing_key=ROUTING_KEY, source="jarvis", timeout=20.0
    )
    email = Email(
        host="127.0.0.1",
        port=receivers.smtp_port,
        sender="jarvis@example.com",
        recipients=["oncall@example.com"],
        username=None,
        password=None,
        starttls=False,
        use_tls=False,
        timeout=20.0,
    )

    async def main() -> None:
        for notice in notices:
            for channel in (slack, pagerduty, email):
                await channel.send(notice)

    anyio.run(main)


def listed(text: str) -> list[int]:
    return [int(n) for n in MARKER.findall(text)]


@settings(max_examples=60)
@given(scheme=st.text(HOSTILE, min_size=1, max_size=20), cause=st.text(HOSTILE), names=NAMES)
@example(scheme="sim", cause="escalated", names=["&<>" * 70] * 13)
@example(scheme="sim", cause="&" * 9000, names=["a", "b"])
@example(scheme="ecs" + "<" * 15, cause="<" * 1100, names=["x" * 5000] * 12)
@example(scheme="k8s", cause="x" * 2000, names=["a", "b", "c"])
def test_every_channel_keeps_its_limit_and_the_count_of_what_it_left_out(
    loopback: Receivers, scheme: str, cause: str, names: list[str]
) -> None:
    """The resolve's Slack section is within 3000 characters and, when it leaves resources
    out, ends with how many, rightly; the trigger's Slack header, Slack text and PagerDuty
    summary are each within their limit, and they and the email's one-line Subject end
    with the count of resources affected. Every channel takes what it is sent."""
    trigger, resolve = notices(scheme, cause, names)
    deliver(loopback, trigger, resolve)
    total = len(names)

    slack_trigger, slack_resolve = loopback.slack[-2:]
    ended = slack_resolve["blocks"][1]["text"]["text"]
    assert len(ended) <= SLACK_SECTION
    shown = listed(ended)
    assert shown == list(range(len(shown)))  # the first ends, in the order they came
    left_out = total - len(shown)
    if left_out:
        assert ended.endswith(f"; and {left_out} more."), ended[-80:]
    else:
        assert not re.search(r"and \d+ more\.$", ended), ended[-80:]

    header = slack_trigger["blocks"][0]["text"]["text"]
    page = loopback.pagerduty[-2]  # the trigger's: a resolve carries no summary
    subjects = [str(message["Subject"]) for message in loopback.emails[-2:]]
    assert len(header) <= SLACK_HEADER
    assert len(slack_trigger["text"]) <= SLACK_TEXT
    assert len(page["payload"]["summary"]) <= PAGERDUTY_SUMMARY
    assert all("\n" not in subject and "\r" not in subject for subject in subjects)
    if total > 1:
        affected = f": {total} resources affected"
        texts = [header, slack_trigger["text"], page["payload"]["summary"], subjects[0]]
        assert [text.endswith(affected) for text in texts] == [True] * 4, texts


ENTITY = re.compile(r"&(amp|lt|gt);")


@settings(max_examples=40)
@given(reason=st.text(HOSTILE, max_size=4000), names=NAMES.map(lambda names: names[:3]))
@example(reason="&<>" * 1500, names=["api"])
@example(reason="x" * 2990, names=["a" * 40])
@example(reason="&" * 1000, names=["&" * 700])
def test_an_alert_section_keeps_its_limit_and_its_reset_command(
    loopback: Receivers, reason: str, names: list[str]
) -> None:
    """Each alert's Slack section is within 3000 characters as sent, splits no escape
    (``&amp;`` whole or not at all), and ends with its reset command, whole, however long
    the reason: the outside words are cut, never the command an operator pastes."""
    trigger, _ = notices("sim", "escalated", names, reason)
    deliver(loopback, trigger)
    sections = [block["text"]["text"] for block in loopback.slack[-1]["blocks"][1:-1]]
    assert len(sections) == len(names)
    for alert, text in zip(trigger.alerts, sections, strict=True):
        assert len(text) <= SLACK_SECTION
        assert "&" not in ENTITY.sub("", text), text
        reset = alert["reset"].replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        if len(reset) < SLACK_SECTION // 2:
            assert text.endswith(f"To reset: `{reset}`"), text[-200:]
