"""Onboarding through the whole loop: customers in SQLite, the real Stripe client, real SMTP.

The reconciler, the guard and the providers are the ones `build_app` builds
from settings; only the clock is virtual. Each tick takes one onboarding step
per customer, so a sign-up is onboarded in three ticks.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import select

from jarvis.app import App
from jarvis.loop.clock import VirtualClock
from jarvis.model import EventKind
from jarvis.store.customers import customers
from tests.billing.conftest import sign_up
from tests.billing.stripe_standin import StripeStandIn
from tests.smtp_inbox import Inbox

pytestmark = pytest.mark.anyio

ONBOARDING_TICKS = 3


async def _ticks(app: App, clock: VirtualClock, count: int) -> None:
    for _ in range(count):
        await app.reconciler.tick()
        clock.advance(30)


async def _row(app: App, customer_id: str) -> Any:
    async with app.store.engine.connect() as connection:
        result = await connection.execute(select(customers).where(customers.c.id == customer_id))
        return result.one()


async def test_a_sign_up_gets_one_stripe_customer_one_welcome_email_and_access(
    make_app: Any, stripe_api: StripeStandIn, inbox: Inbox, clock: VirtualClock
) -> None:
    """A new customer is created in Stripe under the action's key, welcomed once, let in."""
    app = await make_app()
    await sign_up(app, "c1", clock.now(), email_address="alice@customers.test")
    await _ticks(app, clock, ONBOARDING_TICKS + 2)

    created = stripe_api.created()
    assert len(created) == 1
    assert created[0].params["metadata"] == {"jarvis_customer_id": "c1"}
    assert created[0].idempotency_key is not None
    assert created[0].idempotency_key.startswith("jarvis-")
    assert [m["To"] for m in inbox.messages] == ["Name c1 <alice@customers.test>"]
    message = inbox.messages[0]
    assert message["List-Unsubscribe"] == "<https://jarvis.test/unsubscribe?c=c1>"
    parts = {part.get_content_type(): part.get_content() for part in message.iter_parts()}
    assert "https://jarvis.test/unsubscribe?c=c1" in parts["text/plain"]
    assert 'href="https://jarvis.test/unsubscribe?c=c1"' in parts["text/html"]
    row = await _row(app, "c1")
    assert row.stripe_customer_id in stripe_api.customers
    assert row.dashboard_access is True
    assert row.welcomed_at is not None

    events = await app.store.events(limit=10_000)
    applied = [e for e in events if e.kind is EventKind.ACTION_APPLIED]
    kinds = sorted(e.action_kind for e in applied)
    assert kinds == ["create_billing_customer", "grant_access", "send_email"]
    record = json.dumps([e.payload for e in events] + [e.reason for e in events])
    assert "alice@customers.test" not in record
    assert "Name c1" not in record


async def test_a_restart_after_onboarding_sends_nothing_twice(
    make_app: Any, stripe_api: StripeStandIn, inbox: Inbox, clock: VirtualClock
) -> None:
    """A new process on the same database proposes nothing for an onboarded customer."""
    first = await make_app()
    await sign_up(first, "c1", clock.now())
    await _ticks(first, clock, ONBOARDING_TICKS)
    await first.aclose()

    second = await make_app()
    await _ticks(second, clock, 3)
    assert len(stripe_api.created()) == 1
    assert len(inbox.messages) == 1
    assert not [c for c in stripe_api.calls if c.method == "POST"][1:]


async def test_a_failed_create_is_retried_and_makes_one_customer(
    make_app: Any, stripe_api: StripeStandIn, inbox: Inbox, clock: VirtualClock
) -> None:
    """Stripe answering 500 costs one attempt of the retry budget, not a second customer."""
    app = await make_app()
    await sign_up(app, "c1", clock.now())
    stripe_api.fail_next.append(500)
    await _ticks(app, clock, 8)
    assert len(stripe_api.customers) == 1
    assert len(inbox.messages) == 1
    events = await app.store.events(kinds=[EventKind.ACTION_FAILED], limit=100)
    assert [e.action_kind for e in events] == ["create_billing_customer"]


async def test_a_stripe_customer_left_by_a_lost_write_back_is_adopted(
    make_app: Any, stripe_api: StripeStandIn, clock: VirtualClock
) -> None:
    """A Stripe customer already carrying the customer's id is adopted, not duplicated."""
    app = await make_app()
    await sign_up(app, "c1", clock.now())
    # What an attempt whose write-back was lost (a crash after Stripe answered) leaves.
    stripe_api.customers["cus_earlier"] = {
        "id": "cus_earlier",
        "object": "customer",
        "metadata": {"jarvis_customer_id": "c1"},
    }
    await _ticks(app, clock, 1)
    assert stripe_api.created() == []
    assert (await _row(app, "c1")).stripe_customer_id == "cus_earlier"


async def test_an_engaged_kill_switch_sends_nothing(
    make_app: Any, stripe_api: StripeStandIn, inbox: Inbox, clock: VirtualClock
) -> None:
    """With the switch engaged no Stripe call is made and no email sent; each step is blocked."""
    app = await make_app()
    await app.killswitch.set(engaged=True, actor="test", reason="hold")
    await sign_up(app, "c1", clock.now())
    await sign_up(app, "c2", clock.now(), stripe_customer_id="cus_x")
    await _ticks(app, clock, 3)
    assert stripe_api.calls == []
    assert inbox.messages == []
    blocked = await app.store.events(kinds=[EventKind.ACTION_BLOCKED], limit=100)
    assert {e.payload["blocked"] for e in blocked} == {"killswitch"}
    assert {e.action_kind for e in blocked} == {"create_billing_customer", "send_email"}


async def test_a_budget_caps_welcome_emails_per_hour_fleet_wide(
    make_app: Any, inbox: Inbox, clock: VirtualClock
) -> None:
    """`[[budgets]]` on ``send_email``: at most 2 an hour, whatever the policy proposes."""
    budget = {
        "name": "emails-per-hour",
        "provider": "customer",
        "actions": ["send_email"],
        "max": 2,
        "window_seconds": 3600,
    }
    app = await make_app(budgets=[budget])
    for index in range(5):
        await sign_up(app, f"c{index}", clock.now(), stripe_customer_id=f"cus_{index}")
    await _ticks(app, clock, 3)
    assert len(inbox.messages) == 2
    blocked = await app.store.events(kinds=[EventKind.ACTION_BLOCKED], limit=100)
    assert {e.payload["blocked"] for e in blocked} == {"budget"}


async def test_a_refused_email_fails_terminally_without_the_address_in_the_record(
    make_app: Any, inbox: Inbox, clock: VirtualClock
) -> None:
    """A 550 escalates at once; the server's words, which quote the address, are not kept."""
    app = await make_app()
    await sign_up(app, "c1", clock.now(), email_address="bob@example.com", stripe_customer_id="x")
    inbox.refuse_next.append(550)
    await _ticks(app, clock, 3)
    assert inbox.messages == []
    failed = await app.store.events(kinds=[EventKind.ACTION_FAILED], limit=10)
    assert [(e.payload["detail"], e.payload["error_kind"]) for e in failed] == [
        ("email refused 550", "terminal")
    ]
    escalated = await app.store.events(kinds=[EventKind.ACTION_ESCALATED], limit=10)
    assert [e.resource for e in escalated] == ["customer://c1"]
    events = await app.store.events(limit=10_000)
    assert "bob@example.com" not in json.dumps([e.payload for e in events])


async def test_a_recipient_refused_at_rcpt_fails_terminally_as_refused(
    make_app: Any, inbox: Inbox, clock: VirtualClock
) -> None:
    """A mailbox the server does not have (550 at RCPT TO) is refused, not "unreachable"."""
    app = await make_app()
    await sign_up(app, "c1", clock.now(), email_address="gone@example.com", stripe_customer_id="x")
    inbox.unknown.add("gone@example.com")
    await _ticks(app, clock, 3)
    assert inbox.messages == []
    failed = await app.store.events(kinds=[EventKind.ACTION_FAILED], limit=10)
    assert [(e.payload["detail"], e.payload["error_kind"]) for e in failed] == [
        ("email refused 550", "terminal")
    ]


async def test_a_name_with_a_line_break_is_welcomed_under_a_one_line_to(
    make_app: Any, inbox: Inbox, clock: VirtualClock
) -> None:
    """A customer's name holding CR/LF is folded onto the To line; the welcome still goes."""
    app = await make_app()
    name = "Alice\r\nBcc: everyone@elsewhere.test"
    await sign_up(app, "c1", clock.now(), name=name, stripe_customer_id="x")
    await _ticks(app, clock, 3)
    assert [m["To"] for m in inbox.messages] == [
        '"Alice Bcc: everyone@elsewhere.test" <c1@customers.test>'
    ]
    assert (await _row(app, "c1")).welcomed_at is not None


async def test_an_address_naming_two_mailboxes_mails_neither(
    make_app: Any, inbox: Inbox, clock: VirtualClock
) -> None:
    """An email column holding a list of addresses fails terminally; no stranger is mailed."""
    app = await make_app()
    address = "alice@customers.test, stranger@elsewhere.test"
    await sign_up(app, "c1", clock.now(), email_address=address, stripe_customer_id="x")
    await _ticks(app, clock, 3)
    assert inbox.recipients == []
    failed = await app.store.events(kinds=[EventKind.ACTION_FAILED], limit=10)
    assert [(e.payload["detail"], e.payload["error_kind"]) for e in failed] == [
        ("the customer's email is not one address", "terminal")
    ]


async def test_the_default_allow_list_contacts_no_customer(
    make_app: Any, stripe_api: StripeStandIn, inbox: Inbox, clock: VirtualClock
) -> None:
    """Deny by default: with only the simulated fleet allowed, every step is blocked."""
    app = await make_app(allowlist=[{"provider": "sim", "resources": "*", "actions": ["*"]}])
    await sign_up(app, "c1", clock.now())
    await _ticks(app, clock, 2)
    assert stripe_api.calls == []
    assert inbox.messages == []
    blocked = await app.store.events(kinds=[EventKind.ACTION_BLOCKED], limit=100)
    assert {(e.action_kind, e.payload["blocked"]) for e in blocked} == {
        ("create_billing_customer", "allowlist")
    }


async def test_a_welcome_email_the_server_keeps_deferring_is_tried_three_times_then_escalated(
    make_app: Any, inbox: Inbox, clock: VirtualClock
) -> None:
    """Emails are actions: 451 after 451 spends the customer's three attempts, escalates
    once and quarantines the pair, and no fourth message is tried."""
    app = await make_app()
    await sign_up(app, "c1", clock.now(), stripe_customer_id="x")
    inbox.refuse_next.extend([451] * 10)
    await _ticks(app, clock, 12)
    assert inbox.messages == []
    assert len(inbox.refuse_next) == 7
    failed = await app.store.events(kinds=[EventKind.ACTION_FAILED], limit=10)
    assert [(e.action_kind, e.payload["error_kind"]) for e in failed] == [
        ("send_email", "temporary")
    ] * 3
    escalated = await app.store.events(kinds=[EventKind.ACTION_ESCALATED], limit=10)
    assert [e.resource for e in escalated] == ["customer://c1"]
    assert (await app.store.load_retries())[("customer://c1", "send_email")].quarantined
