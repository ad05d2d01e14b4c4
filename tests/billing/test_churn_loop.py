"""Win-back through the whole loop: customers and usage in the database, real Stripe client, SMTP.

The reconciler, guard and providers are the ones `build_app` builds; only the
clock is virtual. A quiet customer gets a discount one tick and the win-back
email carrying it the next, then nothing for 30 days.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select

from jarvis.app import App
from jarvis.loop.clock import VirtualClock
from jarvis.loop.events import idempotency_key
from jarvis.mail import verify_unsubscribe_token
from jarvis.model import EventKind
from jarvis.store.customers import customers
from jarvis.store.usage import record_usage_async
from tests.billing.conftest import sign_up
from tests.billing.stripe_standin import StripeStandIn
from tests.smtp_inbox import Inbox

pytestmark = pytest.mark.anyio

DAY = timedelta(days=1)
SECRET = "unsubscribe-secret-for-tests"
TOKEN_URL = {"unsubscribe_url": "https://jarvis.test/unsubscribe?token={token}"}


async def _ticks(app: App, clock: VirtualClock, count: int) -> None:
    for _ in range(count):
        await app.reconciler.tick()
        clock.advance(30)


async def _row(app: App, customer_id: str) -> Any:
    async with app.store.engine.connect() as connection:
        result = await connection.execute(select(customers).where(customers.c.id == customer_id))
        return result.one()


async def _onboarded(
    app: App, stripe_api: StripeStandIn, customer_id: str, clock: VirtualClock, **columns: Any
) -> None:
    """A customer onboarded long ago, known to Stripe."""
    stripe_id = f"cus_{customer_id}"
    stripe_api.customers[stripe_id] = {"id": stripe_id, "object": "customer", "metadata": {}}
    await sign_up(
        app,
        customer_id,
        clock.now() - 90 * DAY,
        email_address=f"{customer_id}@customers.test",
        stripe_customer_id=stripe_id,
        welcomed_at=clock.now() - 90 * DAY,
        dashboard_access=True,
        **columns,
    )


@pytest.fixture
def secret(monkeypatch: pytest.MonkeyPatch) -> bytes:
    monkeypatch.setenv("UNSUBSCRIBE_SECRET", SECRET)
    return SECRET.encode()


async def test_the_seed_scenario_a_customer_quiet_for_30_days_gets_one_discount_and_one_email(
    make_app: Any, stripe_api: StripeStandIn, inbox: Inbox, clock: VirtualClock, secret: bytes
) -> None:
    """Last active 30 days ago: a promotion code for that customer alone, redeemable once, made
    under the action's key, then one win-back email carrying it with one-click unsubscribe."""
    app = await make_app(email_extra=TOKEN_URL)
    await _onboarded(app, stripe_api, "c1", clock, last_active_at=clock.now() - 30 * DAY)
    await _ticks(app, clock, 5)

    [promo_call] = stripe_api.created("/v1/promotion_codes")
    [coupon_call] = stripe_api.created("/v1/coupons")
    assert promo_call.params["customer"] == "cus_c1"
    assert promo_call.params["max_redemptions"] == "1"
    assert coupon_call.params["max_redemptions"] == "1"
    assert coupon_call.params["duration"] == "once"
    applied = await app.store.events(kinds=[EventKind.ACTION_APPLIED], limit=100)
    assert [e.action_kind for e in applied] == ["create_discount", "send_email"]
    started = await app.store.events(kinds=[EventKind.ACTION_STARTED], limit=100)
    [discount] = [e for e in started if e.action_kind == "create_discount"]
    assert discount.action_id is not None
    discount_key = idempotency_key(discount.action_id)
    assert promo_call.idempotency_key == discount_key
    assert coupon_call.idempotency_key == f"{discount_key}-coupon"

    [message] = inbox.messages
    code = promo_call.params["code"]
    parts = {part.get_content_type(): part.get_content() for part in message.iter_parts()}
    assert code in parts["text/plain"]
    assert code in parts["text/html"]
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    link = message["List-Unsubscribe"].strip().strip("<>")
    [token] = parse_qs(urlsplit(link).query)["token"]
    assert verify_unsubscribe_token(token, secret) == "c1"
    assert link in parts["text/plain"]

    row = await _row(app, "c1")
    assert row.discount_code == code
    assert row.reengaged_at is not None
    events = await app.store.events(limit=10_000)
    record = json.dumps([e.payload for e in events] + [e.reason for e in events])
    assert "c1@customers.test" not in record
    assert code not in record

    clock.advance(int(29 * DAY.total_seconds()))
    await _ticks(app, clock, 3)
    assert len(inbox.messages) == 1


async def test_usage_in_the_usage_table_keeps_a_customer_off_the_list(
    make_app: Any, stripe_api: StripeStandIn, inbox: Inbox, clock: VirtualClock, secret: bytes
) -> None:
    """The row's own last_active_at is old, but llm_usage shows requests last week: no win-back."""
    app = await make_app(email_extra=TOKEN_URL)
    await _onboarded(app, stripe_api, "c1", clock, last_active_at=clock.now() - 60 * DAY)
    await _onboarded(app, stripe_api, "c2", clock, last_active_at=clock.now() - 60 * DAY)
    for days in (20, 12, 5):
        await record_usage_async(
            app.store.engine,
            route="chat",
            model="m",
            input_tokens=1,
            output_tokens=1,
            cost_usd=0.0,
            latency_ms=1.0,
            success=True,
            at=clock.now() - days * DAY,
            customer_id="c2",
        )
    await _ticks(app, clock, 4)
    assert [m["To"] for m in inbox.messages] == ["Name c1 <c1@customers.test>"]
    assert (await _row(app, "c2")).reengaged_at is None


async def test_an_opted_out_or_cancelled_customer_gets_nothing(
    make_app: Any, stripe_api: StripeStandIn, inbox: Inbox, clock: VirtualClock, secret: bytes
) -> None:
    """Quiet for 40 days but opted out, or cancelled: no discount, no email."""
    app = await make_app(email_extra=TOKEN_URL)
    quiet = clock.now() - 40 * DAY
    await _onboarded(app, stripe_api, "c1", clock, last_active_at=quiet, marketing_opt_out=True)
    await _onboarded(
        app, stripe_api, "c2", clock, last_active_at=quiet, subscription_status="canceled"
    )
    await _ticks(app, clock, 3)
    assert stripe_api.calls == []
    assert inbox.messages == []


async def test_an_opt_out_arriving_after_the_discount_stops_the_email(
    make_app: Any, stripe_api: StripeStandIn, inbox: Inbox, clock: VirtualClock, secret: bytes
) -> None:
    """The mailer re-reads the row: an unsubscribe between the two steps sends nothing."""
    app = await make_app(email_extra=TOKEN_URL)
    await _onboarded(app, stripe_api, "c1", clock, last_active_at=clock.now() - 31 * DAY)
    await _ticks(app, clock, 1)
    assert len(stripe_api.created("/v1/promotion_codes")) == 1
    async with app.store.engine.begin() as connection:
        # The opt-out lands without moving updated_at: the facet still says "not opted out".
        await connection.execute(
            customers.update().where(customers.c.id == "c1").values(marketing_opt_out=True)
        )
    await _ticks(app, clock, 2)
    assert inbox.messages == []


async def test_an_engaged_kill_switch_offers_no_discount_and_sends_no_email(
    make_app: Any, stripe_api: StripeStandIn, inbox: Inbox, clock: VirtualClock, secret: bytes
) -> None:
    """With the switch engaged the win-back is proposed and blocked, and nothing leaves."""
    app = await make_app(email_extra=TOKEN_URL)
    await app.killswitch.set(engaged=True, actor="test", reason="hold")
    await _onboarded(app, stripe_api, "c1", clock, last_active_at=clock.now() - 31 * DAY)
    await _ticks(app, clock, 3)
    assert stripe_api.calls == []
    assert inbox.messages == []
    blocked = await app.store.events(kinds=[EventKind.ACTION_BLOCKED], limit=100)
    assert {(e.action_kind, e.payload["blocked"]) for e in blocked} == {
        ("create_discount", "killswitch")
    }


async def test_a_failed_promotion_code_is_retried_and_makes_one(
    make_app: Any, stripe_api: StripeStandIn, inbox: Inbox, clock: VirtualClock, secret: bytes
) -> None:
    """A 500 after the coupon costs one attempt; the retry makes one promotion code, one email."""
    app = await make_app(email_extra=TOKEN_URL)
    await _onboarded(app, stripe_api, "c1", clock, last_active_at=clock.now() - 31 * DAY)
    # The list answers, the coupon is made, then the promotion code create fails once.
    original = stripe_api.handle

    failed: list[str] = []

    def flaky(method: str, target: str, headers: Any, body: str) -> Any:
        if method == "POST" and target.startswith("/v1/promotion_codes") and not failed:
            failed.append(target)
            stripe_api.fail_next.append(500)
        return original(method, target, headers, body)

    stripe_api.handle = flaky  # type: ignore[method-assign]
    await _ticks(app, clock, 5)
    assert len(stripe_api.promotion_codes) == 1
    assert len(inbox.messages) == 1
    failures = await app.store.events(kinds=[EventKind.ACTION_FAILED], limit=10)
    assert [e.action_kind for e in failures] == ["create_discount"]
