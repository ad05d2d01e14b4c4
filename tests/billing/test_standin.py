"""The Stripe stand-in answers the official client as Stripe documents it."""

from __future__ import annotations

import pytest
import stripe
from stripe.params import CustomerCreateParams

from tests.billing.stripe_standin import API_KEY, StripeStandIn, parse_form


def _client(standin: StripeStandIn, key: str = API_KEY) -> stripe.StripeClient:
    return stripe.StripeClient(
        key,
        base_addresses={"api": standin.url},
        max_network_retries=0,
        http_client=stripe.RequestsClient(timeout=10),
    )


def test_bracketed_keys_parse_into_nested_objects() -> None:
    """``metadata[a]=1&expand[]=x&expand[]=y`` is a nested object and a list."""
    parsed = parse_form("email=a%40b.c&metadata[a]=1&expand[]=x&expand[]=y")
    assert parsed == {"email": "a@b.c", "metadata": {"a": "1"}, "expand": ["x", "y"]}


def test_a_replayed_key_returns_the_first_customer_and_makes_no_second(
    stripe_api: StripeStandIn,
) -> None:
    """The same Idempotency-Key and parameters replay the first answer."""
    client = _client(stripe_api)
    params: CustomerCreateParams = {
        "email": "a@b.c",
        "metadata": {"jarvis_customer_id": "c1"},
    }
    first = client.v1.customers.create(params=params, options={"idempotency_key": "k1"})
    again = client.v1.customers.create(params=params, options={"idempotency_key": "k1"})
    assert first.id == again.id
    assert first.metadata is not None
    assert first.metadata["jarvis_customer_id"] == "c1"
    assert len(stripe_api.customers) == 1
    assert [c.idempotency_key for c in stripe_api.created()] == ["k1"]


def test_a_key_reused_with_other_parameters_is_an_idempotency_error(
    stripe_api: StripeStandIn,
) -> None:
    """Stripe refuses a key sent with parameters other than its first request's."""
    client = _client(stripe_api)
    client.v1.customers.create(params={"email": "a@b.c"}, options={"idempotency_key": "k"})
    with pytest.raises(stripe.IdempotencyError):
        client.v1.customers.create(params={"email": "x@y.z"}, options={"idempotency_key": "k"})


def test_errors_come_back_as_the_library_s_error_classes(stripe_api: StripeStandIn) -> None:
    """A wrong key is an AuthenticationError, a 500 an APIError, a missing customer a 404."""
    with pytest.raises(stripe.AuthenticationError):
        _client(stripe_api, "sk_test_wrong").v1.customers.create(params={"email": "a@b.c"})
    stripe_api.fail_next.append(500)
    with pytest.raises(stripe.APIError):
        _client(stripe_api).v1.customers.create(params={"email": "a@b.c"})
    with pytest.raises(stripe.InvalidRequestError) as missing:
        _client(stripe_api).v1.customers.retrieve("cus_missing")
    assert missing.value.code == "resource_missing"


def test_search_finds_customers_by_metadata(stripe_api: StripeStandIn) -> None:
    """``metadata['k']:'v'`` finds exactly the customers carrying it."""
    client = _client(stripe_api)
    made = client.v1.customers.create(params={"metadata": {"jarvis_customer_id": "c'1"}})
    client.v1.customers.create(params={"metadata": {"jarvis_customer_id": "c2"}})
    found = client.v1.customers.search(
        params={"query": "metadata['jarvis_customer_id']:'c\\'1'", "limit": 1}
    )
    assert [c.id for c in found.data] == [made.id]


def test_subscriptions_and_invoices_are_read_back_as_stripe_holds_them(
    stripe_api: StripeStandIn,
) -> None:
    """``GET /v1/subscriptions/ID`` and ``/v1/invoices/ID``; an unknown id is resource_missing."""
    stripe_api.subscriptions["sub_1"] = {
        "id": "sub_1",
        "object": "subscription",
        "status": "unpaid",
    }
    stripe_api.invoices["in_1"] = {"id": "in_1", "object": "invoice", "status": "paid"}
    client = _client(stripe_api)
    assert client.v1.subscriptions.retrieve("sub_1").status == "unpaid"
    assert client.v1.invoices.retrieve("in_1").status == "paid"
    with pytest.raises(stripe.InvalidRequestError) as missing:
        client.v1.invoices.retrieve("in_missing")
    assert missing.value.code == "resource_missing"


def test_a_promotion_code_restricted_to_a_customer_round_trips(stripe_api: StripeStandIn) -> None:
    """Coupon then promotion code, as the library encodes them; listed back by code and customer."""
    client = _client(stripe_api)
    customer = client.v1.customers.create(params={"email": "a@b.c"})
    coupon = client.v1.coupons.create(
        params={"percent_off": 20.0, "duration": "once", "max_redemptions": 1}
    )
    made = client.v1.promotion_codes.create(
        params={
            "promotion": {"type": "coupon", "coupon": coupon.id},
            "code": "BACK-1",
            "customer": customer.id,
            "max_redemptions": 1,
            "expires_at": 1_900_000_000,
        },
        options={"idempotency_key": "p1"},
    )
    assert (made.customer, made.max_redemptions, made.expires_at) == (customer.id, 1, 1_900_000_000)
    sent = stripe_api.created("/v1/promotion_codes")[0]
    assert sent.params["promotion"] == {"type": "coupon", "coupon": coupon.id}
    assert sent.params["max_redemptions"] == "1"
    found = client.v1.promotion_codes.list(params={"code": "back-1", "customer": customer.id})
    assert [p.id for p in found.data] == [made.id]
    other = client.v1.customers.create(params={"email": "x@y.z"})
    assert client.v1.promotion_codes.list(params={"customer": other.id}).data == []


def test_a_promotion_code_needs_its_coupon_and_customer_and_a_free_code(
    stripe_api: StripeStandIn,
) -> None:
    """A missing coupon or customer and a second active code of one customer are refused."""
    client = _client(stripe_api)
    customer = client.v1.customers.create(params={"email": "a@b.c"})
    coupon = client.v1.coupons.create(params={"percent_off": 10.0, "duration": "once"})
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.promotion_codes.create(params={"promotion": {"type": "coupon", "coupon": "no"}})
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.promotion_codes.create(
            params={"promotion": {"type": "coupon", "coupon": coupon.id}, "customer": "cus_no"}
        )
    params = {
        "promotion": {"type": "coupon", "coupon": coupon.id},
        "code": "X",
        "customer": customer.id,
    }
    client.v1.promotion_codes.create(params=params)  # type: ignore[arg-type]
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.promotion_codes.create(params=params)  # type: ignore[arg-type]
    replay = {**params, "code": "Y"}
    first = client.v1.promotion_codes.create(params=replay, options={"idempotency_key": "k"})  # type: ignore[arg-type]
    again = client.v1.promotion_codes.create(params=replay, options={"idempotency_key": "k"})  # type: ignore[arg-type]
    assert first.id == again.id
    assert len(stripe_api.promotion_codes) == 2
