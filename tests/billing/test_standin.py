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
