"""What a resolve says ended its incident: each kind in its own words, never another's.

Every incident but the event store's outage (which carries its own words) used
to resolve with "Every resource of this incident is healthy.", also a stalled
loop, a released kill switch, a closed breaker and an operator's reset.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from jarvis.model import Event, EventKind
from jarvis.notify.alerts import Severity, changes_for
from jarvis.notify.groups import Grouper, Route, Timing
from jarvis.notify.notice import Notice
from jarvis.notify.render import email_message, slack_message
from tests.notify.conftest import RigFactory
from tests.notify.receivers import Receivers
from tests.notify.test_delivery import escalation, record, reset, text_of

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
WRONG = "Every resource of this incident is healthy."


def resolve_after(*events: Event) -> Notice:
    """The resolve a grouper sends for the incident ``events`` open and then close."""
    grouper = Grouper([Route("slack", frozenset(Severity))], Timing())
    notices: list[Notice] = []
    for n, event in enumerate(events):
        now = T0 + timedelta(minutes=10 * n)
        for change in changes_for(event):
            grouper.ingest(change, now)
        notices += grouper.due(now + timedelta(minutes=1))
    assert [notice.action for notice in notices] == ["trigger", "resolve"]
    # What the outbox keeps is what is rendered: through its JSON, as delivery reads it.
    return Notice.from_json(notices[-1].to_json())


def said(notice: Notice) -> Sequence[str]:
    """The words of ``notice`` on Slack (the section under the header) and in the email
    (its plain text's line under the subject, and its HTML paragraph)."""
    blocks = slack_message(notice)["blocks"]
    plain, rich = text_of(email_message(notice, "jarvis@example.com", ["oncall@example.com"]))
    return [blocks[1]["text"]["text"], plain.splitlines()[2], rich]


def alert(resolved: bool, reason: str) -> Event:
    return Event(
        kind=EventKind.ALERT,
        ts=T0,
        idempotency_key=f"breaker:{resolved}",
        policy="breaker",
        reason=reason,
        payload={"cause": "breaker:provider:ecs", "provider": "ecs", "resolved": resolved},
    )


def kill_switch(kind: EventKind, actor: str, reason: str) -> Event:
    return Event(
        kind=kind, ts=T0, idempotency_key=f"ks:{kind}", reason=reason, payload={"actor": actor}
    )


def test_an_escalation_reset_by_an_operator_says_so_not_that_it_is_healthy() -> None:
    """`jarvis retries reset` ends an escalation: the resolve names the reset and who."""
    notice = resolve_after(escalation("sim://api", T0), reset("sim://api", T0))
    expected = "Resolved: sim://api: retries reset by alice (`jarvis retries reset`)."
    slack, plain, rich = said(notice)
    assert (slack, plain) == (expected, expected)
    assert "retries reset by alice" in rich
    assert WRONG not in rich


def test_an_escalation_whose_resource_is_healthy_again_says_which() -> None:
    """A resource reported healthy ends its escalation: the resolve says which resource."""
    healthy = Event(
        kind=EventKind.RESOURCE_CHANGED,
        ts=T0,
        idempotency_key="healthy",
        resource="sim://api",
        payload={"health": "healthy"},
    )
    notice = resolve_after(escalation("sim://api", T0), healthy)
    assert said(notice)[1] == "Resolved: sim://api reported healthy."


def test_a_released_kill_switch_says_who_released_it_and_that_actions_apply_again() -> None:
    """The kill switch's incident ends with its release, not with healthy resources."""
    notice = resolve_after(
        kill_switch(EventKind.KILLSWITCH_ENGAGED, "admin-token", "deploy freeze"),
        kill_switch(EventKind.KILLSWITCH_RELEASED, "cli:alice", "freeze over"),
    )
    assert said(notice)[1] == (
        "Resolved: kill switch released by cli:alice (freeze over); Jarvis applies actions again."
    )


def test_an_alert_resolved_by_its_own_event_says_what_that_event_says() -> None:
    """A breaker (any `alert`) ends with the reason its resolving alert gives."""
    notice = resolve_after(
        alert(False, "provider breaker for ecs opened: 5 failures in 5 minutes"),
        alert(True, "provider breaker for ecs closed: a probe succeeded"),
    )
    assert said(notice)[1] == "Resolved: provider breaker for ecs closed: a probe succeeded."


def test_a_resolve_written_before_its_words_were_kept_claims_nothing_it_cannot_know() -> None:
    """An outbox row from before resolves carried their words says only that it resolved."""
    notice = resolve_after(escalation("sim://api", T0), reset("sim://api", T0))
    old = {key: value for key, value in notice.to_json().items() if key != "ended"}
    assert said(Notice.from_json(old))[1] == "Every alert of this incident has resolved."


async def test_a_stalled_loop_resolves_saying_ticks_finish_again_and_how_long_none_did(
    make_rig: RigFactory, receivers: Receivers
) -> None:
    """The loop_stalled page's resolve says a tick finished again, when, and for how long
    none had: on Slack and in the email, through a real notifier and real receivers."""
    rig = await make_rig(interval=30.0)
    last = rig.clock.now()
    await rig.rounds(180, step=1.0)  # three intervals and more: paged
    assert len(receivers.triggers()) == 1
    back = rig.clock.now()
    for n in range(20):  # the loop ticks again, every 30 s, for ten minutes
        at = rig.clock.now()
        tick = Event(kind=EventKind.TICK_FINISHED, ts=at, idempotency_key=f"t:{n}", tick_id=f"t{n}")
        await record(rig, tick)
        await rig.rounds(3, step=10.0)

    assert len(receivers.resolves()) == 1
    expected = (
        f"Resolved: ticks finish again: one finished at {back:%Y-%m-%d %H:%M:%S} UTC, "
        f"after none for {(back - last).total_seconds() / 60:.0f} min."
    )
    (slack,) = [m for m in receivers.slack if m["text"].startswith("[RESOLVED]")]
    assert slack["blocks"][1]["text"]["text"] == expected
    (email,) = [m for m in receivers.emails if str(m["Subject"]).startswith("[RESOLVED]")]
    plain, rich = text_of(email)
    assert expected in plain.splitlines()
    assert WRONG not in plain + rich


def notices_of(*steps: Sequence[Event], grouper: Grouper | None = None) -> list[Notice]:
    """What a grouper sends as each step's events come in, ten minutes apart, each
    through its JSON as the outbox keeps it."""
    grouper = grouper or Grouper([Route("slack", frozenset(Severity))], Timing())
    notices: list[Notice] = []
    for n, events in enumerate(steps):
        now = T0 + timedelta(minutes=10 * n)
        for event in events:
            for change in changes_for(event):
                grouper.ingest(change, now)
        notices += grouper.due(now + timedelta(minutes=1))
    return [Notice.from_json(notice.to_json()) for notice in notices]


def healthy(resource: str, n: int = 0) -> Event:
    return Event(
        kind=EventKind.RESOURCE_CHANGED,
        ts=T0,
        idempotency_key=f"healthy:{resource}:{n}",
        resource=resource,
        payload={"health": "healthy"},
    )


def test_an_incident_of_several_resources_resolves_saying_how_each_ended() -> None:
    """Two escalated resources of one incident end apart, one healthy, one reset: the
    resolve says both ends, in the order they came, not only the last."""
    a, b = "sim://svc-a", "sim://svc-b"
    notices = notices_of([escalation(a, T0), escalation(b, T0)], [healthy(a)], [reset(b, T0)])

    assert [notice.action for notice in notices] == ["trigger", "trigger", "resolve"]
    expected = (
        "Resolved: sim://svc-a reported healthy; "
        "sim://svc-b: retries reset by alice (`jarvis retries reset`)."
    )
    slack, plain, rich = said(notices[-1])
    assert (slack, plain) == (expected, expected)
    assert "sim://svc-a reported healthy; sim://svc-b: retries reset by alice" in rich


def test_a_resource_that_fires_again_is_said_once_by_its_last_end() -> None:
    """A resource that ended, escalated again and ended again is listed once, as it ended
    last; two kinds of one resource ending with the same words are said once."""
    a, b = "sim://svc-a", "sim://svc-b"
    again = replace(escalation(a, T0, n=1), action_kind="scale")  # a second kind
    notices = notices_of(
        [escalation(a, T0), escalation(b, T0)],
        [healthy(a)],
        [escalation(a, T0, n=2), again],
        [reset(a, T0)],
        [healthy(b)],
    )

    assert notices[-1].action == "resolve"
    assert said(notices[-1])[1] == (
        "Resolved: sim://svc-a: retries reset by alice (`jarvis retries reset`); "
        "sim://svc-b reported healthy."
    )


def test_a_resolve_of_many_resources_lists_ten_and_counts_the_rest_within_slacks_limit() -> None:
    """Thirteen resources reset by an operator with a very long name: ten are listed, each
    cut, then "and 3 more", and the Slack section stays within its 3000 characters."""
    actor = "x" * 1000
    resources = [f"sim://svc-{n:02}" for n in range(13)]
    resets = [replace(reset(r, T0), payload={"actor": actor, "rows": 1}) for r in resources]
    notices = notices_of([escalation(r, T0) for r in resources], resets)

    assert [notice.action for notice in notices] == ["trigger", "resolve"]
    slack, plain, _ = said(notices[-1])
    assert slack == plain
    assert len(slack) <= 3000
    assert slack.endswith("; and 3 more.")
    assert [r for r in resources if r in slack] == resources[:10]


async def test_the_ends_said_so_far_outlive_a_restart(
    make_rig: RigFactory, receivers: Receivers
) -> None:
    """One resource ends, the notifier restarts (its grouping state read back from
    PostgreSQL), the other ends: the resolve still says both."""
    a, b = "sim://svc-a", "sim://svc-b"
    first = await make_rig()
    await record(first, escalation(a, first.clock.now()), escalation(b, first.clock.now()))
    await first.rounds(60, step=10.0)
    await record(first, healthy(a))
    await first.rounds(60, step=10.0)
    assert len(receivers.triggers()) == 2  # the page, and its update once svc-a ended

    second = await make_rig(clock=first.clock)  # a new notifier: loads the saved state
    await record(second, reset(b, second.clock.now()))
    await second.rounds(60, step=10.0)

    assert len(receivers.resolves()) == 1
    (slack,) = [m for m in receivers.slack if m["text"].startswith("[RESOLVED]")]
    assert slack["blocks"][1]["text"]["text"] == (
        "Resolved: sim://svc-a reported healthy; "
        "sim://svc-b: retries reset by alice (`jarvis retries reset`)."
    )


@pytest.mark.parametrize(
    ("saved", "expected"),
    [
        (
            {"ended": "sim://svc-a reported healthy"},  # the previous release's one string
            "Resolved: sim://svc-a reported healthy; "
            "sim://svc-b: retries reset by alice (`jarvis retries reset`).",
        ),
        ({}, "Resolved: sim://svc-b: retries reset by alice (`jarvis retries reset`)."),
    ],
)
def test_a_grouping_state_saved_before_the_ends_were_listed_still_loads(
    saved: dict[str, str], expected: str
) -> None:
    """A group saved with one `ended` string, or with none, loads and resolves with what
    it knows."""
    a, b = "sim://svc-a", "sim://svc-b"
    before = Grouper([Route("slack", frozenset(Severity))], Timing())
    notices_of([escalation(a, T0), escalation(b, T0)], [healthy(a)], grouper=before)
    state = before.to_json()
    for group in state["groups"].values():
        for key in ("ended", "endings"):
            group.pop(key, None)
        group.update(saved)
    after = Grouper([Route("slack", frozenset(Severity))], Timing())
    after.load_json(state)

    (notice,) = notices_of([], [], [reset(b, T0)], grouper=after)

    assert notice.action == "resolve"
    assert said(notice)[1] == expected


def test_a_resolve_queued_with_one_string_of_words_still_renders_them() -> None:
    """An outbox row written while a resolve kept only its last alert's words (one
    string) renders those words, not each of their characters."""
    notice = resolve_after(escalation("sim://api", T0), reset("sim://api", T0))
    row = {**notice.to_json(), "ended": "sim://api reported healthy"}

    assert said(Notice.from_json(row))[1] == "Resolved: sim://api reported healthy."
