"""Dunning through the whole loop: a signed webhook in, the tick's policies, real SMTP out.

The webhook is posted to the daemon's HTTP server (`jarvis.cli.surfaces`
wiring); the reconciler, guard and providers are the ones `build_app` builds;
the clock is virtual and the email goes to aiosmtpd on a free loopback port.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import select

from jarvis.model import EventKind
from jarvis.notify.alerts import changes_for
from jarvis.store.customers import customers
from tests.billing.conftest import Webhook, sign_up
from tests.billing.stripe_events import event, invoice, subscription
from tests.smtp_inbox import Inbox

pytestmark = pytest.mark.anyio


async def _ticks(hook: Webhook, count: int) -> None:
    for _ in range(count):
        await hook.app.reconciler.tick()
        hook.app.clock.advance(30)  # type: ignore[attr-defined]


async def _onboarded(hook: Webhook) -> None:
    """``c1``: Stripe customer ``cus_1``, welcomed, with access; the loop has seen it."""
    app = hook.app
    now = app.clock.now()
    await sign_up(
        app, "c1", now, stripe_customer_id="cus_1", welcomed_at=now, dashboard_access=True
    )
    await _ticks(hook, 1)


async def _row(hook: Webhook) -> Any:
    async with hook.app.store.engine.connect() as connection:
        result = await connection.execute(select(customers).where(customers.c.id == "c1"))
        return result.one()


def _parts(inbox: Inbox, index: int) -> dict[str, str]:
    message = inbox.messages[index]
    return {part.get_content_type(): part.get_content() for part in message.iter_parts()}


async def test_a_failed_payment_sends_one_email_per_invoice_with_its_hosted_link(
    webhook: Webhook, inbox: Inbox
) -> None:
    """One email for in_1 however often Stripe's retries fail; a new invoice, one more."""
    await _onboarded(webhook)
    await webhook.post(event("evt_1", "invoice.payment_failed", 100, invoice("in_1", "open")))
    await _ticks(webhook, 3)
    assert len(inbox.messages) == 1
    assert inbox.messages[0]["To"] == "Name c1 <c1@customers.test>"
    parts = _parts(inbox, 0)
    assert "https://invoice.stripe.test/i/in_1" in parts["text/plain"]
    assert 'href="https://invoice.stripe.test/i/in_1"' in parts["text/html"]

    retried = invoice("in_1", "open", attempt_count=2)
    await webhook.post(event("evt_2", "invoice.payment_failed", 200, retried))
    await _ticks(webhook, 3)
    assert len(inbox.messages) == 1

    await webhook.post(event("evt_3", "invoice.payment_failed", 300, invoice("in_2", "open")))
    await _ticks(webhook, 3)
    assert len(inbox.messages) == 2
    assert "https://invoice.stripe.test/i/in_2" in _parts(inbox, 1)["text/plain"]

    events = await webhook.app.store.events(limit=10_000)
    record = json.dumps([e.payload for e in events] + [e.reason for e in events])
    assert "invoice.stripe.test" not in record
    assert "c1@customers.test" not in record
    applied = [e for e in events if e.kind is EventKind.ACTION_APPLIED]
    assert [(e.action_kind, e.policy) for e in applied] == [("send_email", "dunning")] * 2


async def test_a_paid_invoice_before_the_tick_sends_nothing(webhook: Webhook, inbox: Inbox) -> None:
    """Failed then paid between two ticks: the loop sees a paid customer and stays quiet."""
    await _onboarded(webhook)
    await webhook.post(event("evt_1", "invoice.payment_failed", 100, invoice("in_1", "open")))
    await webhook.post(event("evt_2", "invoice.paid", 200, invoice("in_1", "paid")))
    await _ticks(webhook, 2)
    assert inbox.messages == []


async def test_a_canceled_subscription_revokes_access_and_escalates_until_renewed(
    webhook: Webhook, inbox: Inbox
) -> None:
    """Canceled: access revoked once, an error alert for a person; active again: access back."""
    await _onboarded(webhook)
    await webhook.post(
        event("evt_1", "customer.subscription.deleted", 100, subscription("sub_1", "canceled"))
    )
    await _ticks(webhook, 3)
    row = await _row(webhook)
    assert (row.subscription_status, row.dashboard_access) == ("canceled", False)
    store = webhook.app.store
    alerts = await store.events(kinds=[EventKind.ALERT], limit=100)
    assert [(a.resource, a.payload["cause"], a.payload["severity"]) for a in alerts] == [
        ("customer://c1", "dunning", "error")
    ]
    applied = await store.events(kinds=[EventKind.ACTION_APPLIED], limit=100)
    assert [e.action_kind for e in applied] == ["revoke_access"]
    assert inbox.messages == []

    renewed = subscription("sub_2", "active", plan="team")
    await webhook.post(event("evt_2", "customer.subscription.created", 200, renewed))
    await _ticks(webhook, 2)
    row = await _row(webhook)
    assert (row.plan, row.subscription_status, row.dashboard_access) == ("team", "active", True)
    applied = await store.events(kinds=[EventKind.ACTION_APPLIED], limit=100)
    assert [e.action_kind for e in applied] == ["revoke_access", "grant_access"]
    alerts = await store.events(kinds=[EventKind.ALERT], limit=100)
    assert [(a.payload["cause"], a.payload.get("resolved", False)) for a in alerts] == [
        ("dunning", False),
        ("dunning", True),
    ]
    # What the notifier makes of them: one incident for a person, closed by the renewal.
    changes = [c for a in alerts for c in changes_for(a)]
    assert [(c.fingerprint, c.firing, c.severity.value) for c in changes] == [
        ("alert:dunning:customer://c1", True, "error"),
        ("alert:dunning:customer://c1", False, "warning"),
    ]


async def test_an_engaged_kill_switch_sends_no_dunning_email_but_still_records(
    webhook: Webhook, inbox: Inbox
) -> None:
    """Recording is not acting: the row learns of the failure; the email is blocked."""
    await _onboarded(webhook)
    app = webhook.app
    await app.killswitch.set(engaged=True, actor="test", reason="hold")
    await webhook.post(event("evt_1", "invoice.payment_failed", 100, invoice("in_1", "open")))
    await webhook.post(
        event("evt_2", "customer.subscription.updated", 100, subscription("sub_1", "unpaid"))
    )
    await _ticks(webhook, 3)
    assert inbox.messages == []
    row = await _row(webhook)
    assert (row.unpaid_invoice_id, row.dashboard_access) == ("in_1", True)
    blocked = await app.store.events(kinds=[EventKind.ACTION_BLOCKED], limit=100)
    assert {(e.action_kind, e.payload["blocked"]) for e in blocked} == {
        ("revoke_access", "killswitch")
    }
    await app.killswitch.set(engaged=False, actor="test", reason="go")
    await _ticks(webhook, 3)
    assert (await _row(webhook)).dashboard_access is False
    assert len(inbox.messages) == 1


async def test_a_budget_bounds_revocations_fleet_wide(make_app: Any) -> None:
    """``[[budgets]]`` on ``revoke_access``: a bug that cancels everyone shuts out one an hour."""
    budget = {
        "name": "revocations-per-hour",
        "provider": "customer",
        "actions": ["revoke_access"],
        "max": 1,
        "window_seconds": 3600,
    }
    app = await make_app(budgets=[budget])
    now = app.clock.now()
    for name in ("c1", "c2", "c3"):
        await sign_up(
            app,
            name,
            now,
            stripe_customer_id=f"cus_{name}",
            welcomed_at=now,
            dashboard_access=True,
            subscription_status="canceled",
        )
    for _ in range(3):
        await app.reconciler.tick()
        app.clock.advance(30)
    applied = await app.store.events(kinds=[EventKind.ACTION_APPLIED], limit=100)
    assert [e.action_kind for e in applied] == ["revoke_access"]
    blocked = await app.store.events(kinds=[EventKind.ACTION_BLOCKED], limit=100)
    assert {(e.action_kind, e.payload["blocked"]) for e in blocked} == {("revoke_access", "budget")}


async def test_an_unpaid_new_subscription_does_not_bring_access_back(
    webhook: Webhook, inbox: Inbox
) -> None:
    """Canceled, then a checkout whose card is declined (incomplete, then expired): no access."""
    await _onboarded(webhook)
    await webhook.post(
        event("evt_1", "customer.subscription.deleted", 100, subscription("sub_1", "canceled"))
    )
    await _ticks(webhook, 2)
    assert (await _row(webhook)).dashboard_access is False

    declined = subscription("sub_2", "incomplete", plan="team")
    await webhook.post(event("evt_2", "customer.subscription.created", 200, declined))
    await _ticks(webhook, 2)
    expired = subscription("sub_2", "incomplete_expired", plan="team")
    await webhook.post(event("evt_3", "customer.subscription.updated", 300, expired))
    await _ticks(webhook, 2)
    row = await _row(webhook)
    assert (row.stripe_subscription_id, row.subscription_status, row.dashboard_access) == (
        "sub_1",
        "canceled",
        False,
    )
    applied = await webhook.app.store.events(kinds=[EventKind.ACTION_APPLIED], limit=100)
    assert [e.action_kind for e in applied] == ["revoke_access"]
    assert inbox.messages == []

    paid = subscription("sub_2", "active", plan="team")
    await webhook.post(event("evt_4", "customer.subscription.updated", 400, paid))
    await _ticks(webhook, 2)
    row = await _row(webhook)
    assert (row.stripe_subscription_id, row.subscription_status, row.dashboard_access) == (
        "sub_2",
        "active",
        True,
    )
