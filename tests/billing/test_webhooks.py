"""``POST /webhooks/stripe`` on the daemon's real HTTP server, signed as Stripe signs.

The app, the receiver and the server are built as `jarvis run` builds them
(`jarvis.cli.surfaces.stripe_webhook`); customers live in SQLite and in
PostgreSQL; the official `stripe` library reads objects back from the stand-in.
"""

from __future__ import annotations

import json
import time
from typing import Any

import aiohttp
import pytest
from sqlalchemy import func, select
from structlog.testing import capture_logs

from jarvis.model import EventKind
from tests.billing.conftest import Webhook, sign_up
from tests.billing.stripe_events import event, invoice, sign, subscription
from tests.billing.stripe_standin import StripeStandIn

pytestmark = pytest.mark.anyio


@pytest.fixture
async def hook(webhook: Webhook) -> Webhook:
    """``c1`` is Stripe customer ``cus_1``."""
    app = webhook.app
    await sign_up(app, "c1", app.clock.now(), stripe_customer_id="cus_1", dashboard_access=True)
    return webhook


async def _row(hook: Webhook, customer_id: str = "c1") -> Any:
    from jarvis.store.customers import customers

    async with hook.app.store.engine.connect() as connection:
        result = await connection.execute(select(customers).where(customers.c.id == customer_id))
        return result.one()


async def _received(hook: Webhook) -> list[Any]:
    from jarvis.store.customers import stripe_events

    async with hook.app.store.engine.connect() as connection:
        result = await connection.execute(select(stripe_events).order_by(stripe_events.c.id))
        return list(result.all())


async def _billing_events(hook: Webhook) -> list[Any]:
    kinds = [EventKind.BILLING_SUBSCRIPTION, EventKind.BILLING_INVOICE]
    return list(await hook.app.store.events(kinds=kinds, limit=100))


async def test_a_signed_subscription_event_sets_plan_and_status_and_wakes_the_loop(
    hook: Webhook,
) -> None:
    """A created subscription is recorded on the row; one billing event names the customer."""
    body = event("evt_1", "customer.subscription.created", 100, subscription("sub_1", "active"))
    assert await hook.post(body) == (200, {"outcome": "applied", "event": "evt_1"})
    row = await _row(hook)
    assert (row.plan, row.subscription_status, row.stripe_subscription_id) == (
        "pro",
        "active",
        "sub_1",
    )
    (recorded,) = await _billing_events(hook)
    assert recorded.kind is EventKind.BILLING_SUBSCRIPTION
    assert recorded.resource == "customer://c1"
    assert recorded.payload["stripe_event"] == "evt_1"
    assert "c1@customers.test" not in json.dumps(recorded.payload)
    assert hook.wakes == 1


@pytest.mark.parametrize(
    "signature",
    [
        pytest.param(sign(b"other body"), id="another-body"),
        pytest.param("t=1,v1=" + "0" * 64, id="garbage"),
        pytest.param("t=1,v1=é", id="not-ascii"),
        pytest.param("", id="empty"),
        pytest.param(None, id="missing"),
    ],
)
async def test_a_bad_or_missing_signature_is_400_and_changes_nothing(
    hook: Webhook, signature: str | None
) -> None:
    """Nothing is read from an unsigned body: no row moves, nothing is recorded or woken."""
    body = event("evt_1", "customer.subscription.created", 100, subscription("sub_1", "canceled"))
    status, answer = await hook.post(body, signature, sign_it=False)
    assert (status, answer["outcome"]) == (400, "bad_signature")
    assert (await _row(hook)).subscription_status is None
    assert await _received(hook) == []
    assert await _billing_events(hook) == []
    assert hook.wakes == 0


async def test_a_body_signed_with_another_secret_is_refused(hook: Webhook) -> None:
    """The endpoint's own secret, not any secret."""
    body = event("evt_1", "customer.subscription.created", 100, subscription("sub_1", "active"))
    status, _ = await hook.post(body, sign(body, secret="whsec_someone_else"))
    assert status == 400
    assert await _received(hook) == []


async def test_a_signature_older_than_five_minutes_is_refused(hook: Webhook) -> None:
    """Stripe's tolerance is 300 s: a correctly signed body replayed later is refused."""
    body = event("evt_1", "customer.subscription.created", 100, subscription("sub_1", "active"))
    status, _ = await hook.post(body, sign(body, at=int(time.time()) - 301))
    assert status == 400
    assert await _received(hook) == []
    assert (await hook.post(body, sign(body, at=int(time.time()) - 60)))[0] == 200


async def test_a_replayed_event_changes_nothing(hook: Webhook) -> None:
    """The same event id again is 200 and a no-op, even after a newer event moved the row."""
    first = event("evt_1", "customer.subscription.updated", 100, subscription("sub_1", "past_due"))
    newer = event("evt_2", "customer.subscription.updated", 200, subscription("sub_1", "active"))
    assert (await hook.post(first))[1]["outcome"] == "applied"
    assert (await hook.post(newer))[1]["outcome"] == "applied"
    assert await hook.post(first) == (200, {"outcome": "replayed", "event": "evt_1"})
    assert (await _row(hook)).subscription_status == "active"
    assert [r.id for r in await _received(hook)] == ["evt_1", "evt_2"]
    assert len(await _billing_events(hook)) == 2
    assert hook.wakes == 2


async def test_an_update_before_its_create_keeps_the_update(
    hook: Webhook, stripe_api: StripeStandIn
) -> None:
    """The late ``created`` is in doubt; Stripe's current object, read back, decides."""
    stripe_api.subscriptions["sub_1"] = subscription("sub_1", "past_due", plan="team")
    updated = subscription("sub_1", "past_due", plan="team")
    created = subscription("sub_1", "incomplete", plan="pro")
    await hook.post(event("evt_2", "customer.subscription.updated", 200, updated))
    status, answer = await hook.post(event("evt_1", "customer.subscription.created", 100, created))
    assert (status, answer["outcome"]) == (200, "applied")
    row = await _row(hook)
    assert (row.plan, row.subscription_status, row.subscription_event_at) == (
        "team",
        "past_due",
        200,
    )
    assert [(c.method, c.path) for c in stripe_api.calls] == [("GET", "/v1/subscriptions/sub_1")]


async def test_an_older_update_after_a_newer_one_does_not_win(
    hook: Webhook, stripe_api: StripeStandIn
) -> None:
    """A downgrade sent at 150 arriving after an upgrade sent at 200 leaves the upgrade."""
    stripe_api.subscriptions["sub_1"] = subscription("sub_1", "active", plan="team")
    upgrade = subscription("sub_1", "active", plan="team")
    downgrade = subscription("sub_1", "active", plan="basic")
    await hook.post(event("evt_up", "customer.subscription.updated", 200, upgrade))
    await hook.post(event("evt_down", "customer.subscription.updated", 150, downgrade))
    assert (await _row(hook)).plan == "team"


async def test_two_events_in_one_second_are_settled_by_reading_stripe(
    hook: Webhook, stripe_api: StripeStandIn
) -> None:
    """Same ``created``: order cannot be told, so the object is read back (here: canceled)."""
    stripe_api.subscriptions["sub_1"] = subscription("sub_1", "canceled")
    await hook.post(
        event("evt_a", "customer.subscription.deleted", 300, subscription("sub_1", "canceled"))
    )
    await hook.post(
        event("evt_b", "customer.subscription.updated", 300, subscription("sub_1", "active"))
    )
    assert (await _row(hook)).subscription_status == "canceled"


async def test_a_failed_reread_is_503_and_records_nothing_so_stripe_delivers_again(
    hook: Webhook, stripe_api: StripeStandIn
) -> None:
    """Stripe answering 500 to the re-read leaves the event unrecorded for its next delivery,
    and logs one warning saying so, not a traceback."""
    await hook.post(
        event("evt_2", "customer.subscription.updated", 200, subscription("sub_1", "active"))
    )
    stripe_api.fail_next.append(500)
    late = event("evt_1", "customer.subscription.created", 100, subscription("sub_1", "incomplete"))
    with capture_logs() as logs:
        status, answer = await hook.post(late)
    assert (status, answer["outcome"]) == (503, "unavailable")
    (said,) = [line for line in logs if line["event"] == "stripe webhook not recorded"]
    assert (said["log_level"], said["error"]) == ("warning", "stripe APIError (500)"), said
    assert not [line for line in logs if "exc_info" in line], logs
    assert [r.id for r in await _received(hook)] == ["evt_2"]
    stripe_api.subscriptions["sub_1"] = subscription("sub_1", "active")
    assert (await hook.post(late))[1]["outcome"] == "applied"


async def test_a_paid_invoice_clears_a_failed_one_even_when_it_arrives_first(
    hook: Webhook, stripe_api: StripeStandIn
) -> None:
    """``invoice.paid`` at 200 then ``payment_failed`` at 100: the re-read invoice is paid."""
    stripe_api.invoices["in_1"] = invoice("in_1", "paid")
    await hook.post(event("evt_f", "invoice.payment_failed", 100, invoice("in_1", "open")))
    row = await _row(hook)
    assert (row.unpaid_invoice_id, row.unpaid_invoice_url) == (
        "in_1",
        "https://invoice.stripe.test/i/in_1",
    )
    await hook.post(event("evt_p", "invoice.paid", 200, invoice("in_1", "paid")))
    assert (await _row(hook)).unpaid_invoice_id is None
    await hook.post(event("evt_f2", "invoice.payment_failed", 150, invoice("in_1", "open")))
    row = await _row(hook)
    assert (row.unpaid_invoice_id, row.unpaid_invoice_url) == (None, None)
    payloads = json.dumps([e.payload for e in await _billing_events(hook)])
    assert "invoice.stripe.test" not in payloads


async def test_an_oversize_body_is_413_and_nothing_is_read(hook: Webhook) -> None:
    """A body past the limit is refused before its signature is even checked."""
    obj = subscription("sub_1", "canceled") | {"padding": "x" * 300_000}
    body = event("evt_big", "customer.subscription.updated", 100, obj)
    status, answer = await hook.post(body)
    assert status == 413
    assert "error" in answer
    assert await _received(hook) == []


async def test_a_body_that_does_not_decompress_is_400_and_changes_nothing(hook: Webhook) -> None:
    """A body sent as gzip that is not gzip is a JSON 400; nothing is read or recorded."""
    body = event("evt_1", "customer.subscription.created", 100, subscription("sub_1", "active"))
    headers = {"Stripe-Signature": sign(body), "Content-Encoding": "gzip"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(hook.url, data=body, headers=headers) as response,
    ):
        assert response.status == 400
        assert (await response.json())["outcome"] == "bad_payload"
    assert await _received(hook) == []
    assert hook.wakes == 0


async def test_a_signed_body_that_is_not_an_event_is_400_as_json(hook: Webhook) -> None:
    """Valid signature, broken JSON or no event shape: a JSON 400, never a traceback."""
    for body in (b"{not json", b"[]", json.dumps({"id": "evt_1", "type": "x"}).encode()):
        status, answer = await hook.post(body)
        assert (status, answer["outcome"]) == (400, "bad_payload")
    assert await _received(hook) == []


@pytest.mark.parametrize("created", [2**63, -(2**63) - 1, 10**30])
@pytest.mark.parametrize("kind", ["charge.refunded", "invoice.paid"])
async def test_a_created_second_no_database_column_holds_is_400_not_stored(
    hook: Webhook, created: int, kind: str
) -> None:
    """A signed event whose ``created`` is past a 64-bit integer is a 400 bad_payload, not a 500
    (SQLite) or a 503 that Stripe would deliver again forever (PostgreSQL)."""
    obj = invoice("in_1", "paid") if kind == "invoice.paid" else {"id": "ch_1"}
    status, answer = await hook.post(event("evt_big", kind, created, obj))
    assert (status, answer["outcome"]) == (400, "bad_payload")
    assert await _received(hook) == []


@pytest.mark.parametrize("status", [[None, None], {"open": True}, 3, None])
@pytest.mark.parametrize("kind", ["invoice.paid", "invoice.payment_failed"])
async def test_an_invoice_whose_status_is_not_a_string_is_ignored(
    hook: Webhook, status: object, kind: str
) -> None:
    """A signed invoice event for our customer whose ``status`` is a list, an object or a
    number says nothing to change: 200 ``ignored``, as a subscription's would, never a 500."""
    obj = invoice("in_1", "open") | {"status": status}
    assert await hook.post(event("evt_s", kind, 100, obj)) == (
        200,
        {"outcome": "ignored", "event": "evt_s"},
    )
    assert (await _row(hook)).unpaid_invoice_id is None


async def test_unknown_types_are_200_ignored_and_counted(hook: Webhook) -> None:
    """Stripe sends many types; the others are acknowledged, recorded and counted."""
    body = event("evt_x", "charge.refunded", 100, {"id": "ch_1", "object": "charge"})
    assert await hook.post(body) == (200, {"outcome": "ignored", "event": "evt_x"})
    assert [(r.id, r.outcome) for r in await _received(hook)] == [("evt_x", "ignored")]
    assert await _billing_events(hook) == []
    assert hook.wakes == 0
    text, _ = hook.app.metrics.render()
    assert b'jarvis_stripe_webhooks_total{outcome="ignored"} 1.0' in text


async def test_a_customer_is_found_by_metadata_when_its_stripe_id_is_not_yet_written(
    hook: Webhook, stripe_api: StripeStandIn
) -> None:
    """The Stripe customer's ``jarvis_customer_id`` (onboarding sets it), read from the API."""
    app = hook.app
    await sign_up(app, "c2", app.clock.now())
    stripe_api.customers["cus_2"] = {
        "id": "cus_2",
        "object": "customer",
        "metadata": {"jarvis_customer_id": "c2"},
    }
    body = event(
        "evt_1",
        "customer.subscription.created",
        100,
        subscription("sub_2", "active", customer="cus_2"),
    )
    assert (await hook.post(body))[1]["outcome"] == "applied"
    assert (await _row(hook, "c2")).subscription_status == "active"
    stranger = event(
        "evt_2",
        "customer.subscription.created",
        100,
        subscription("sub_9", "active", customer="cus_9"),
    )
    stripe_api.customers["cus_9"] = {"id": "cus_9", "object": "customer", "metadata": {}}
    assert await hook.post(stranger) == (200, {"outcome": "unknown_customer", "event": "evt_2"})
    async with app.store.engine.connect() as connection:
        from jarvis.store.customers import customers

        statuses = await connection.execute(
            select(func.count())
            .select_from(customers)
            .where(customers.c.subscription_status.is_not(None))
        )
        assert statuses.scalar_one() == 1


async def test_the_ledger_refuses_an_older_change_that_raced_past_the_check(hook: Webhook) -> None:
    """Two deliveries at once: the row's stamp, not the receiver's read, has the last word."""
    from jarvis.actuators.customers.billing import BillingLedger, Delivery, SubscriptionChange

    ledger = BillingLedger(hook.app.store.engine)
    now = hook.app.clock.now()
    newer = Delivery("evt_new", "customer.subscription.updated", 200)
    older = Delivery("evt_old", "customer.subscription.updated", 100)
    change = SubscriptionChange("sub_1", "active", "team")
    assert (
        await ledger.record(newer, customer_id="c1", change=change, outcome="applied", now=now)
        == "applied"
    )
    late = SubscriptionChange("sub_1", "canceled", "basic")
    assert (
        await ledger.record(older, customer_id="c1", change=late, outcome="applied", now=now)
        == "stale"
    )
    reread = SubscriptionChange("sub_1", "canceled", "basic", reread=True)
    again = Delivery("evt_old2", "customer.subscription.updated", 100)
    assert (
        await ledger.record(again, customer_id="c1", change=reread, outcome="applied", now=now)
        == "applied"
    )
    row = await _row(hook)
    assert (row.subscription_status, row.subscription_event_at) == ("canceled", 200)
    assert [(r.id, r.outcome) for r in await _received(hook)] == [
        ("evt_new", "applied"),
        ("evt_old", "stale"),
        ("evt_old2", "applied"),
    ]


async def test_without_a_signing_secret_there_is_no_endpoint(
    make_app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stripe configured but ``STRIPE_WEBHOOK_SECRET`` unset: nothing to verify with, no route."""
    from jarvis.cli.surfaces import stripe_webhook

    monkeypatch.delenv("STRIPE_WEBHOOK_SECRET", raising=False)
    app = await make_app()
    assert stripe_webhook(app.settings, app, lambda: None) is None


async def test_a_stripe_customer_stripe_does_not_know_is_not_ours_and_not_retried(
    hook: Webhook, stripe_api: StripeStandIn
) -> None:
    """No row, no metadata, and Stripe answers 404 for the customer: 200, not a 503 loop."""
    body = event(
        "evt_1",
        "customer.subscription.created",
        100,
        subscription("sub_9", "active", customer="cus_gone"),
    )
    assert await hook.post(body) == (200, {"outcome": "unknown_customer", "event": "evt_1"})
    assert [(c.method, c.path) for c in stripe_api.calls] == [("GET", "/v1/customers/cus_gone")]


async def test_an_object_stripe_no_longer_has_leaves_a_late_event_stale(
    hook: Webhook, stripe_api: StripeStandIn
) -> None:
    """In doubt and the re-read is a 404: recorded as stale, the row keeps the newer state."""
    await hook.post(event("evt_2", "invoice.payment_failed", 200, invoice("in_2", "open")))
    late = event("evt_1", "invoice.payment_failed", 100, invoice("in_1", "open"))
    assert await hook.post(late) == (200, {"outcome": "stale", "event": "evt_1"})
    assert (await _row(hook)).unpaid_invoice_id == "in_2"


async def test_a_late_deletion_of_an_old_subscription_leaves_the_new_one(
    hook: Webhook, stripe_api: StripeStandIn
) -> None:
    """Cancelled, then subscribed anew: the old subscription's late ``deleted`` changes nothing."""
    stripe_api.subscriptions["sub_1"] = subscription("sub_1", "canceled", plan="basic")
    stripe_api.subscriptions["sub_2"] = subscription("sub_2", "active", plan="team")
    old = subscription("sub_1", "active", plan="basic")
    await hook.post(event("evt_1", "customer.subscription.created", 100, old))
    await hook.post(
        event("evt_3", "customer.subscription.created", 300, stripe_api.subscriptions["sub_2"])
    )
    deleted = subscription("sub_1", "canceled", plan="basic")
    late = event("evt_2", "customer.subscription.deleted", 200, deleted)
    assert await hook.post(late) == (200, {"outcome": "stale", "event": "evt_2"})
    row = await _row(hook)
    assert (row.stripe_subscription_id, row.subscription_status, row.plan) == (
        "sub_2",
        "active",
        "team",
    )


async def test_an_ended_second_subscription_does_not_end_the_live_one(hook: Webhook) -> None:
    """An abandoned checkout's subscription expiring, in order, leaves the paying one as it is."""
    live = subscription("sub_1", "active", plan="team")
    await hook.post(event("evt_1", "customer.subscription.created", 100, live))
    abandoned = subscription("sub_2", "incomplete_expired", plan="basic")
    expired = event("evt_2", "customer.subscription.updated", 200, abandoned)
    assert await hook.post(expired) == (200, {"outcome": "stale", "event": "evt_2"})
    row = await _row(hook)
    assert (row.stripe_subscription_id, row.subscription_status, row.plan) == (
        "sub_1",
        "active",
        "team",
    )
    ended = subscription("sub_1", "canceled", plan="team")
    await hook.post(event("evt_3", "customer.subscription.deleted", 300, ended))
    assert (await _row(hook)).subscription_status == "canceled"
