"""Stripe events as Stripe sends them, signed exactly as Stripe signs them.

Stripe's ``Stripe-Signature`` header is ``t=TIMESTAMP,v1=SIGNATURE`` where
SIGNATURE is the hex HMAC-SHA256, keyed with the endpoint secret, of
``f"{TIMESTAMP}.{BODY}"`` (https://docs.stripe.com/webhooks#verify-manually).
It is computed here with `hmac`, not with the library the daemon verifies
with, so the two are checked against each other.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

SECRET = "whsec_test_jarvis_endpoint"


def sign(body: bytes, *, secret: str = SECRET, at: int | None = None) -> str:
    """The ``Stripe-Signature`` header for ``body`` signed at ``at`` (now by default)."""
    timestamp = int(time.time()) if at is None else at
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def event(event_id: str, kind: str, created: int, obj: dict[str, Any]) -> bytes:
    """An event body: Stripe's envelope around ``obj``."""
    envelope = {
        "id": event_id,
        "object": "event",
        "api_version": "2024-06-20",
        "created": created,
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": kind,
        "data": {"object": obj},
    }
    return json.dumps(envelope).encode()


def subscription(
    sub_id: str,
    status: str,
    *,
    customer: str = "cus_1",
    plan: str = "pro",
    metadata: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A subscription object: one item whose price's lookup key is the plan."""
    return {
        "id": sub_id,
        "object": "subscription",
        "customer": customer,
        "status": status,
        "metadata": metadata or {},
        "items": {
            "object": "list",
            "data": [
                {
                    "id": f"si_{sub_id}",
                    "object": "subscription_item",
                    "price": {"id": f"price_{plan}", "object": "price", "lookup_key": plan},
                }
            ],
        },
    }


def invoice(
    invoice_id: str, status: str, *, customer: str = "cus_1", attempt_count: int = 1
) -> dict[str, Any]:
    """An invoice object with its hosted page."""
    return {
        "id": invoice_id,
        "object": "invoice",
        "customer": customer,
        "status": status,
        "attempt_count": attempt_count,
        "hosted_invoice_url": f"https://invoice.stripe.test/i/{invoice_id}",
        "metadata": {},
    }
