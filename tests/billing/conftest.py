"""Fixtures for the customer tests: the Stripe stand-in, an SMTP server, a customers table.

Everything is real on loopback: the official `stripe` client talks to
`stripe_standin`, aiosmtplib to aiosmtpd on a free port, and customers live in
a real SQLite file migrated by the store.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from jarvis.app import App, build_app
from jarvis.cli.surfaces import stripe_webhook
from jarvis.config import Settings, load_settings
from jarvis.loop.clock import VirtualClock
from jarvis.store import EventStore
from jarvis.store.customers import customers
from jarvis.telemetry.http import HttpServer
from tests.billing.stripe_events import SECRET, sign
from tests.billing.stripe_standin import API_KEY, StripeStandIn, running
from tests.smtp_inbox import Inbox

UNSUBSCRIBE_SECRET = "unsubscribe-secret-0123456789"
"""The unsubscribe secret of a `jarvis run` in the environment `serving_customers` makes."""
_SERVING_CUSTOMERS = """
[customers]
enabled = true

[customers.stripe]
api_base = "{stripe}"

[customers.email]
host = "127.0.0.1"
port = 9
sender = "hello@jarvis.test"
starttls = false
unsubscribe_url = "http://127.0.0.1/unsubscribe?token={{token}}"
"""
ALLOW_CUSTOMERS = [
    {
        "provider": "customer",
        "resources": "*",
        "actions": [
            "create_billing_customer",
            "send_email",
            "grant_access",
            "revoke_access",
            "create_discount",
        ],
    }
]


@pytest.fixture
def stripe_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[StripeStandIn]:
    monkeypatch.setenv("STRIPE_SECRET_KEY", API_KEY)
    with running() as standin:
        yield standin


@pytest.fixture
def inbox() -> Iterator[Inbox]:
    box = Inbox()
    box.start()
    try:
        yield box
    finally:
        box.stop()


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


def customer_settings(
    db_url: str, stripe_api: StripeStandIn, inbox: Inbox, **overrides: Any
) -> Settings:
    overrides.setdefault("allowlist", ALLOW_CUSTOMERS)
    batch = overrides.pop("customers_read_batch", 20_000)
    extra = overrides.pop("customers_extra", {})
    email = {
        "host": "127.0.0.1",
        "port": inbox.port,
        "sender": "hello@jarvis.test",
        "starttls": False,
        "unsubscribe_url": "https://jarvis.test/unsubscribe?c={customer}",
        "dashboard_url": "https://jarvis.test/dashboard",
        **overrides.pop("email_extra", {}),
    }
    return load_settings(
        database_url=db_url,
        simulated={"enabled": False},
        customers={
            "enabled": True,
            "lag_seconds": 1,
            "read_batch": batch,
            "stripe": {"api_base": stripe_api.url},
            "email": email,
            **extra,
        },
        **overrides,
    )


@pytest.fixture
def db_url(sqlite_or_postgres: str) -> str:
    """Each loop test runs on the embedded SQLite default and on a real PostgreSQL."""
    return sqlite_or_postgres


@pytest.fixture
async def make_app(
    db_url: str, stripe_api: StripeStandIn, inbox: Inbox, clock: VirtualClock
) -> AsyncIterator[Any]:
    """Builds apps through the real composition root and provider registry; closes them."""
    apps: list[App] = []

    async def factory(**overrides: Any) -> App:
        settings = customer_settings(db_url, stripe_api, inbox, **overrides)
        app = await build_app(settings, clock=clock, run_id=f"r{len(apps)}")
        apps.append(app)
        return app

    yield factory
    for app in apps:
        await app.aclose()


async def sign_up(
    app: App,
    customer_id: str,
    now: datetime,
    *,
    email_address: str | None = None,
    **columns: Any,
) -> None:
    """Insert a customer as the product would at sign-up."""
    row = {
        "id": customer_id,
        "email": email_address or f"{customer_id}@customers.test",
        "name": f"Name {customer_id}",
        "plan": "free",
        "signed_up_at": now,
        "marketing_opt_out": False,
        "dashboard_access": False,
        "updated_at": now,
        **columns,
    }
    async with app.store.engine.begin() as connection:
        await connection.execute(customers.insert().values(**row))


def serving_customers(tmp_path: Path, stripe: str) -> dict[str, str]:
    """The environment of a `jarvis run` whose port serves ``/webhooks/stripe`` and
    ``/unsubscribe``: customers configured (``tmp_path/jarvis.toml``) against the Stripe
    stand-in at ``stripe``, its signing secret `SECRET`, mail to a closed port and the
    unsubscribe secret `UNSUBSCRIBE_SECRET`."""
    config = tmp_path / "jarvis.toml"
    config.write_text(_SERVING_CUSTOMERS.format(stripe=stripe))
    return {
        "JARVIS_CONFIG": str(config),
        "STRIPE_SECRET_KEY": API_KEY,
        "STRIPE_WEBHOOK_SECRET": SECRET,
        "UNSUBSCRIBE_SECRET": UNSUBSCRIBE_SECRET,
    }


async def seed_customer(url: str, customer_id: str, stripe_id: str) -> None:
    """A welcomed ``pro`` customer, Stripe's ``stripe_id``, in the database at ``url``, as
    the daemon would have left it: for a test that starts `jarvis run` on that database."""
    store = await EventStore.connect(url, spool_path=None)
    now = datetime.now(UTC)
    try:
        async with store.engine.begin() as connection:
            await connection.execute(
                customers.insert().values(
                    id=customer_id,
                    email=f"{customer_id}@customers.test",
                    plan="pro",
                    signed_up_at=now,
                    stripe_customer_id=stripe_id,
                    welcomed_at=now,
                    marketing_opt_out=False,
                    dashboard_access=True,
                    updated_at=now,
                )
            )
    finally:
        await store.aclose()


class Webhook:
    """The daemon's HTTP server with ``POST /webhooks/stripe`` wired to a real app."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.server: HttpServer | None = None
        self.wakes = 0

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.port}/webhooks/stripe"

    def wake(self) -> None:
        self.wakes += 1

    async def post(
        self, body: bytes, signature: str | None = None, *, sign_it: bool = True
    ) -> tuple[int, dict[str, Any]]:
        """POST ``body`` signed now (unless a signature, or none, is given)."""
        headers = {"Content-Type": "application/json"}
        if signature is None and sign_it:
            signature = sign(body)
        if signature is not None:
            headers["Stripe-Signature"] = signature
        async with (
            aiohttp.ClientSession() as session,
            session.post(self.url, data=body, headers=headers) as response,
        ):
            return response.status, await response.json()


@pytest.fixture
async def webhook(make_app: Any, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Webhook]:
    """A real app and its HTTP server on a free loopback port, built as `jarvis run` builds it."""
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", SECRET)
    app = await make_app()
    hook = Webhook(app)
    backend = stripe_webhook(app.settings, app, hook.wake)
    assert backend is not None
    server = HttpServer(
        host="127.0.0.1",
        port=0,
        metrics=app.metrics,
        healthy=lambda: (True, "ok"),
        ready=_ready,
        admin=None,
        admin_token=None,
        stripe_webhook=backend,
    )
    hook.server = server
    await server.start()
    try:
        yield hook
    finally:
        await server.stop()


async def _ready() -> tuple[bool, dict[str, str]]:
    return True, {}
