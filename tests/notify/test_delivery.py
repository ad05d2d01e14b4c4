"""The notifier end to end: events in a real PostgreSQL, loopback Slack, PagerDuty and SMTP."""

from __future__ import annotations

from datetime import datetime, timedelta
from email.message import EmailMessage

import anyio
import pytest
from sqlalchemy.ext.asyncio import AsyncConnection

from jarvis.model import Event, EventKind
from tests.notify.conftest import ROUTING_KEY, Rig, RigFactory
from tests.notify.receivers import Receivers

pytestmark = pytest.mark.anyio


def escalation(resource: str, at: datetime, *, n: int = 0) -> Event:
    return Event(
        kind=EventKind.ACTION_ESCALATED,
        ts=at,
        idempotency_key=f"esc:{resource}:{n}",
        resource=resource,
        action_kind="restart",
        policy="heal",
        reason="3 failed attempts; quarantined until `jarvis retries reset`",
        payload={"attempts": 3, "last_error": "container exited with code 137"},
        action_id=f"a-{resource}-{n}",
    )


def reset(resource: str, at: datetime) -> Event:
    return Event(
        kind=EventKind.RETRIES_RESET,
        ts=at,
        idempotency_key=f"reset:{resource}:{at.isoformat()}",
        resource=resource,
        reason="reset by alice",
        payload={"actor": "alice", "rows": 1},
    )


async def record(rig: Rig, *events: Event) -> None:
    rig.store.append(events)
    await rig.store.flush()


async def record_in(connection: AsyncConnection, event: Event) -> None:
    """Insert ``event`` on ``connection`` (an open transaction), as a slow writer would."""
    from jarvis.store.codec import event_row
    from jarvis.store.tables import events

    await connection.execute(events.insert().values(event_row(event)))


def text_of(message: EmailMessage) -> tuple[str, str]:
    plain = message.get_body(preferencelist=("plain",))
    rich = message.get_body(preferencelist=("html",))
    assert plain is not None
    assert rich is not None
    return plain.get_content(), rich.get_content()


async def test_one_escalation_sends_one_slack_message_one_page_and_one_email(
    rig: Rig, receivers: Receivers
) -> None:
    """An escalation reaches every channel once, after group_wait, and not again while unchanged."""
    await record(rig, escalation("sim://ai-dawg-ai-brain", rig.clock.now()))
    await rig.rounds(20)  # 20 s: still inside group_wait
    assert (receivers.slack, receivers.pagerduty, receivers.emails) == ([], [], [])

    await rig.rounds(360, step=10.0)  # an hour, well under repeat_interval

    assert len(receivers.slack) == 1
    assert len(receivers.triggers()) == 1
    assert len(receivers.emails) == 1
    slack_text = str(receivers.slack[0]["blocks"])
    assert "sim://ai-dawg-ai-brain" in slack_text
    assert "jarvis retries reset sim://ai-dawg-ai-brain" in slack_text
    assert "restart, 3 attempts" in slack_text
    page = receivers.triggers()[0]
    assert page["routing_key"] == ROUTING_KEY
    assert page["payload"]["severity"] == "critical"
    assert page["payload"]["custom_details"]["resources"] == ["sim://ai-dawg-ai-brain"]
    plain, rich = text_of(receivers.emails[0])
    assert "jarvis retries reset sim://ai-dawg-ai-brain" in plain
    assert "<b>sim://ai-dawg-ai-brain</b>" in rich
    sent = rig.metrics.notifications.labels(channel="pagerduty", outcome="sent")._value.get()
    assert sent == 1


async def test_an_operator_reset_resolves_the_page_once(rig: Rig, receivers: Receivers) -> None:
    """Resetting the escalated resource sends one resolve with the trigger's dedup key."""
    await record(rig, escalation("sim://ai-dawg-ai-brain", rig.clock.now()))
    await rig.rounds(40)
    assert len(receivers.triggers()) == 1
    await record(rig, reset("sim://ai-dawg-ai-brain", rig.clock.now()))
    await rig.rounds(720, step=10.0)

    assert len(receivers.resolves()) == 1
    assert len(receivers.triggers()) == 1
    assert receivers.resolves()[0]["dedup_key"] == receivers.triggers()[0]["dedup_key"]
    assert len(receivers.slack) == 2
    assert receivers.slack[1]["text"].startswith("[RESOLVED]")
    assert len(receivers.emails) == 2


async def test_fifty_services_failing_in_one_outage_page_once(
    rig: Rig, receivers: Receivers
) -> None:
    """Fifty escalations of one provider and cause make one page that lists all fifty."""
    now = rig.clock.now()
    services = [f"sim://svc-{i:02d}" for i in range(50)]
    await record(
        rig, *(escalation(s, now + timedelta(seconds=i % 20)) for i, s in enumerate(services))
    )
    await rig.rounds(180, step=10.0)

    assert len(receivers.triggers()) == 1
    assert len({p["dedup_key"] for p in receivers.pagerduty}) == 1
    assert sorted(receivers.triggers()[0]["payload"]["custom_details"]["resources"]) == services
    assert "50 resources affected" in receivers.triggers()[0]["payload"]["summary"]
    assert len(receivers.slack) == 1
    assert len(receivers.emails) == 1


async def test_a_receiver_failing_three_times_then_answering_gets_the_page_once(
    rig: Rig, receivers: Receivers
) -> None:
    """Three 500s then a 202: retried with backoff, delivered exactly once."""
    receivers.fail_next["pagerduty"] = 3
    await record(rig, escalation("sim://ai-dawg-ai-brain", rig.clock.now()))
    await rig.rounds(10 * 60, step=1.0)

    assert receivers.requests["pagerduty"] == 4
    assert len(receivers.triggers()) == 1
    counts = {
        outcome: rig.metrics.notifications.labels(channel="pagerduty", outcome=outcome)._value.get()
        for outcome in ("sent", "retried", "failed")
    }
    assert counts == {"sent": 1, "retried": 3, "failed": 0}
    (row,) = [r for r in await rig.outbox.rows() if r.channel == "pagerduty"]
    assert (row.status, row.attempts) == ("sent", 4)


async def test_a_slack_429_is_retried_no_sooner_than_its_retry_after(
    rig: Rig, receivers: Receivers
) -> None:
    """Rate limited with Retry-After: 120, the notice waits those 120 s, then goes once."""
    receivers.throttle_next["slack"] = 1
    await record(rig, escalation("sim://ai-dawg-ai-brain", rig.clock.now()))
    await rig.rounds(40, step=1.0)  # group_wait (30 s), then the 429
    assert receivers.requests["slack"] == 1

    await rig.rounds(100, step=1.0)
    assert receivers.requests["slack"] == 1
    await rig.rounds(30, step=1.0)
    assert receivers.requests["slack"] == 2
    assert len(receivers.slack) == 1


async def test_a_resolve_never_overtakes_its_trigger_still_being_retried(
    rig: Rig, receivers: Receivers
) -> None:
    """A trigger held 600 s by a 429 goes before the resolve queued meanwhile, not after it."""
    receivers.retry_after = 600
    receivers.throttle_next["pagerduty"] = 1
    await record(rig, escalation("sim://ai-dawg-ai-brain", rig.clock.now()))
    await rig.rounds(40, step=1.0)  # group_wait (30 s), then the 429
    assert (receivers.requests["pagerduty"], receivers.pagerduty) == (1, [])
    await record(rig, reset("sim://ai-dawg-ai-brain", rig.clock.now()))
    await rig.rounds(240, step=5.0)

    assert [p["event_action"] for p in receivers.pagerduty] == ["trigger", "resolve"]
    assert len({p["dedup_key"] for p in receivers.pagerduty}) == 1


async def test_an_error_page_that_is_not_utf8_is_retried_like_any_502(
    rig: Rig, receivers: Receivers
) -> None:
    """A 502 whose body does not decode as UTF-8 is a temporary failure; the page goes next."""
    receivers.garble_next["pagerduty"] = 1
    await record(rig, escalation("sim://ai-dawg-ai-brain", rig.clock.now()))
    await rig.rounds(10 * 60, step=1.0)

    assert receivers.requests["pagerduty"] == 2
    assert len(receivers.triggers()) == 1
    (row,) = [r for r in await rig.outbox.rows() if r.channel == "pagerduty"]
    assert (row.status, row.attempts) == ("sent", 2)


async def test_a_silence_mutes_matching_resources_until_it_expires(
    rig: Rig, receivers: Receivers
) -> None:
    """A silence on sim://ai-dawg-* holds the notification back; expiring it lets it through."""
    now = rig.clock.now()
    silence = Event(
        kind=EventKind.SILENCE_ADDED,
        ts=now,
        idempotency_key="silence.added:s1",
        reason="maintenance",
        payload={
            "id": "s1",
            "match": "sim://ai-dawg-*",
            "until": (now + timedelta(hours=2)).isoformat(),
        },
    )
    await record(rig, silence, escalation("sim://ai-dawg-ai-brain", now))
    await rig.rounds(180, step=10.0)
    assert receivers.pagerduty == []
    expire = Event(
        kind=EventKind.SILENCE_EXPIRED,
        ts=rig.clock.now(),
        idempotency_key="silence.expired:s1",
        payload={"id": "s1"},
    )
    await record(rig, expire)
    await rig.rounds(10 * 60, step=1.0)
    assert len(receivers.triggers()) == 1


async def test_a_stalled_loop_pages_and_a_finished_tick_resolves_it(
    make_rig: RigFactory, receivers: Receivers
) -> None:
    """Three intervals without tick.finished page loop_stalled; ticking again resolves it."""
    rig = await make_rig(interval=30.0)
    await rig.rounds(60, step=1.0)  # 60 s < 3 intervals of 30 s
    assert receivers.pagerduty == []
    await rig.rounds(120, step=1.0)
    assert len(receivers.triggers()) == 1
    assert "no tick has finished" in receivers.triggers()[0]["payload"]["summary"]
    for n in range(20):  # the loop ticks again, every 30 s, for ten minutes
        tick = Event(
            kind=EventKind.TICK_FINISHED,
            ts=rig.clock.now(),
            idempotency_key=f"tick-{n}:finished",
            tick_id=f"tick-{n}",
        )
        await record(rig, tick)
        await rig.rounds(30, step=1.0)
    assert len(receivers.resolves()) == 1
    assert len(receivers.triggers()) == 1


async def test_a_new_notifier_on_the_same_database_sends_nothing_twice(
    make_rig: RigFactory, receivers: Receivers
) -> None:
    """A restarted notifier resumes from the saved cursor and groups: nothing is resent."""
    first = await make_rig()
    await record(first, escalation("sim://ai-dawg-ai-brain", first.clock.now()))
    await first.rounds(60, step=1.0)
    assert len(receivers.triggers()) == 1
    second = await make_rig(clock=first.clock)
    await second.rounds(360, step=10.0)
    assert len(receivers.triggers()) == 1
    assert len(receivers.slack) == 1
    await record(second, reset("sim://ai-dawg-ai-brain", second.clock.now()))
    await second.rounds(60, step=10.0)
    assert len(receivers.resolves()) == 1
    assert receivers.resolves()[0]["dedup_key"] == receivers.triggers()[0]["dedup_key"]


async def test_an_engaged_kill_switch_is_told_to_slack_and_email_but_does_not_page(
    rig: Rig, receivers: Receivers
) -> None:
    """A warning routes to Slack and email only; the release sends their resolve."""
    engaged = Event(
        kind=EventKind.KILLSWITCH_ENGAGED,
        ts=rig.clock.now(),
        idempotency_key="ks:1",
        reason="look",
        payload={"actor": "cli:alice"},
    )
    await record(rig, engaged)
    await rig.rounds(10, step=10.0)
    assert receivers.pagerduty == []
    assert len(receivers.slack) == 1
    assert "jarvis killswitch release" in str(receivers.slack[0]["blocks"])
    assert len(receivers.emails) == 1
    released = Event(kind=EventKind.KILLSWITCH_RELEASED, ts=rig.clock.now(), idempotency_key="ks:2")
    await record(rig, released)
    await rig.rounds(60, step=10.0)
    assert receivers.slack[-1]["text"].startswith("[RESOLVED]")
    assert len(receivers.slack) == 2
    assert receivers.pagerduty == []


async def test_a_resource_reported_healthy_again_resolves_its_escalation(
    rig: Rig, receivers: Receivers
) -> None:
    """resource.changed with health healthy resolves the page without an operator."""
    await record(rig, escalation("sim://ai-dawg-ai-brain", rig.clock.now()))
    await rig.rounds(10, step=10.0)
    healthy = Event(
        kind=EventKind.RESOURCE_CHANGED,
        ts=rig.clock.now(),
        idempotency_key="changed:brain",
        resource="sim://ai-dawg-ai-brain",
        payload={"health": "healthy"},
    )
    await record(rig, healthy)
    await rig.rounds(60, step=10.0)
    (resolve,) = receivers.resolves()
    assert resolve["dedup_key"] == receivers.triggers()[0]["dedup_key"]


async def test_an_event_committed_after_a_later_id_still_pages(
    rig: Rig, receivers: Receivers
) -> None:
    """Ids commit out of order; the cursor waits at the gap rather than skip the escalation."""
    esc = escalation("sim://ai-dawg-ai-brain", rig.clock.now())
    async with rig.store.engine.connect() as slow:
        transaction = await slow.begin()
        await record_in(slow, esc)
        # A later id commits first: another writer's tick.
        later = Event(
            kind=EventKind.TICK_FINISHED, ts=rig.clock.now(), idempotency_key="t:finished"
        )
        await record(rig, later)
        await rig.rounds(5, step=1.0)
        await transaction.commit()
    await rig.rounds(60, step=1.0)
    assert len(receivers.triggers()) == 1


async def test_a_page_in_flight_when_the_notifier_stops_is_recorded_as_sent(
    rig: Rig, receivers: Receivers
) -> None:
    """A shutdown during a send lets it finish and records it: a restart must not page again.

    Before, cancelling the notifier while PagerDuty had the event but had not
    answered left the row due, and the next daemon sent the page a second time.
    """
    receivers.holding.set()
    await record(rig, escalation("sim://ai-dawg-ai-brain", rig.clock.now()))
    async with anyio.create_task_group() as group:
        group.start_soon(rig.rounds, 400, 10.0)
        await anyio.to_thread.run_sync(receivers.arrived.wait, 60)
        group.cancel_scope.cancel()  # SIGTERM while the receiver holds its answer
        receivers.released.set()

    assert len(receivers.triggers()) == 1
    rows = await rig.outbox.rows()
    paged = [(r.action, r.status) for r in rows if r.channel == "pagerduty"]
    assert paged == [("trigger", "sent")]


async def test_a_webhook_answering_with_a_redirect_is_not_taken_for_delivered(
    rig: Rig, receivers: Receivers
) -> None:
    """A 302 from the webhook URL is not followed: the message reached no one, and says so."""
    receivers.redirect_next["slack"] = 1
    await record(rig, escalation("sim://ai-dawg-ai-brain", rig.clock.now()))
    await rig.rounds(40, step=1.0)

    assert receivers.moved == 0
    (row,) = [r for r in await rig.outbox.rows() if r.channel == "slack"]
    assert row.status == "failed"
    assert row.last_error == "slack answered 302: redirected, not followed"


def warning(cause: str, at: datetime) -> Event:
    return Event(
        kind=EventKind.ALERT,
        ts=at,
        idempotency_key=f"alert:{cause}",
        reason=f"{cause} needs a look",
        payload={"cause": cause, "severity": "warning"},
    )


async def test_a_rate_limited_channel_is_left_alone_until_its_retry_after(
    rig: Rig, receivers: Receivers
) -> None:
    """A backlog meets a 429: the other Slack rows wait out its Retry-After, spending no attempt."""
    receivers.throttle_next["slack"] = 10
    await record(rig, *(warning(f"backlog-{n}", rig.clock.now()) for n in range(5)))
    await rig.rounds(40, step=1.0)  # group_wait (30 s): five Slack rows due, the first a 429
    assert receivers.requests["slack"] == 1
    slack = [r for r in await rig.outbox.rows() if r.channel == "slack"]
    assert [r.attempts for r in slack] == [1, 0, 0, 0, 0]
    assert len(receivers.emails) == 5  # the other channels are not held

    receivers.throttle_next["slack"] = 0
    await rig.rounds(100, step=1.0)
    assert receivers.requests["slack"] == 1  # Retry-After: 120
    await rig.rounds(60, step=1.0)
    assert len(receivers.slack) == 5
    assert receivers.requests["slack"] == 6


async def test_a_channel_failing_with_a_5xx_is_tried_once_a_round(
    rig: Rig, receivers: Receivers
) -> None:
    """Five Slack rows due and Slack answering 500: one request a round, not one a row."""
    receivers.fail_next["slack"] = 100
    await record(rig, *(warning(f"backlog-{n}", rig.clock.now()) for n in range(5)))
    await rig.rounds(31, step=1.0)  # group_wait (30 s): the five rows come due in round 31
    assert receivers.requests["slack"] == 1
    receivers.fail_next["slack"] = 0
    await rig.rounds(120, step=1.0)
    assert len(receivers.slack) == 5
