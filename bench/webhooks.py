"""Benchmark 13: a Stripe webhook delivery, and the dunning policy at 100,000 customers (issue 14).

Two figures, each against a baseline measured in the same run:

- ``POST /webhooks/stripe``: ``--deliveries`` signed ``customer.subscription.updated``
  events, one after another, to the daemon's HTTP server built as `jarvis run`
  builds it (`jarvis.cli.surfaces.stripe_webhook`) over SQLite with 1,000
  customers; each verifies the signature, checks the event id, updates the
  row, records a ``billing.subscription`` event and flushes it. Median latency,
  against the same server's ``GET /healthz`` (the HTTP floor).
- The dunning policy's ``evaluate`` over ``--customers`` customer states
  (nothing to do, the steady state), against the onboarding policy's over the
  same snapshot: what the new policy adds to every tick.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from typing import Any

import aiohttp
import anyio
from common import save

from jarvis.app import build_app
from jarvis.cli.surfaces import stripe_webhook
from jarvis.config import load_settings
from jarvis.loop.clock import VirtualClock
from jarvis.model import Customer, Health, History, ResourceRef, ResourceState, Snapshot
from jarvis.policies.dunning import DunningPolicy
from jarvis.policies.onboarding import OnboardingPolicy
from jarvis.store.customers import customers
from jarvis.telemetry.http import HttpServer
from jarvis.telemetry.logging import configure_logging

SECRET = "whsec_bench"  # noqa: S105 - a benchmark endpoint's secret
NOW = datetime(2026, 11, 1, tzinfo=UTC)


def _signed(n: int) -> tuple[bytes, str]:
    obj = {
        "id": f"sub_{n % 1000}",
        "object": "subscription",
        "customer": f"cus_{n % 1000}",
        "status": "active",
        "items": {"data": [{"price": {"id": "price_pro", "lookup_key": "pro"}}]},
    }
    body = json.dumps(
        {
            "id": f"evt_{n}",
            "object": "event",
            "type": "customer.subscription.updated",
            "created": 1_000 + n,
            "data": {"object": obj},
        }
    ).encode()
    stamp = int(time.time())
    digest = hmac.new(SECRET.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return body, f"t={stamp},v1={digest}"


async def _deliveries(url: str, count: int) -> dict[str, Any]:
    os.environ["STRIPE_SECRET_KEY"] = "sk_bench"  # noqa: S105 - never sent: no re-read happens
    os.environ["STRIPE_WEBHOOK_SECRET"] = SECRET
    settings = load_settings(
        database_url=url,
        simulated={"enabled": False},
        customers={"enabled": True, "stripe": {"api_base": "http://127.0.0.1:9"}},
    )
    app = await build_app(settings, clock=VirtualClock())
    async with app.store.engine.begin() as connection:
        await connection.execute(
            customers.insert(),
            [
                {
                    "id": f"c{n}",
                    "email": f"c{n}@bench.test",
                    "signed_up_at": NOW,
                    "stripe_customer_id": f"cus_{n}",
                    "updated_at": NOW,
                }
                for n in range(1000)
            ],
        )
    backend = stripe_webhook(settings, app, lambda: None)
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
    await server.start()
    base = f"http://127.0.0.1:{server.port}"
    posts: list[float] = []
    probes: list[float] = []
    try:
        async with aiohttp.ClientSession() as session:
            for n in range(count):
                body, signature = _signed(n)
                started = time.perf_counter()
                async with session.post(
                    f"{base}/webhooks/stripe", data=body, headers={"Stripe-Signature": signature}
                ) as answer:
                    assert answer.status == 200, await answer.text()  # noqa: S101 - a broken run is no figure
                posts.append(time.perf_counter() - started)
                started = time.perf_counter()
                async with session.get(f"{base}/healthz") as answer:
                    await answer.read()
                probes.append(time.perf_counter() - started)
    finally:
        await server.stop()
        await app.aclose()
    post, probe = statistics.median(posts), statistics.median(probes)
    return {
        "deliveries": count,
        "delivery_median_ms": round(post * 1000, 2),
        "healthz_median_ms": round(probe * 1000, 2),
        "ratio": round(post / probe, 1),
    }


async def _ready() -> tuple[bool, dict[str, str]]:
    return True, {}


def _policies(count: int) -> dict[str, Any]:
    states = {}
    for n in range(count):
        customer = Customer(
            plan="pro",
            signed_up_at=NOW,
            billing=True,
            welcomed=True,
            access=True,
            opted_out=False,
            subscription_status="active",
        )
        ref = ResourceRef("customer", f"c{n:07d}", kind="customer")
        states[str(ref)] = ResourceState(
            ref=ref, health=Health.HEALTHY, observed_at=NOW, customer=customer
        )
    snapshot = Snapshot(taken_at=NOW, resources=states)

    def timed(policy: Any) -> float:
        runs = []
        for _ in range(7):
            started = time.perf_counter()
            policy.evaluate(snapshot, History(), NOW)
            runs.append(time.perf_counter() - started)
        return statistics.median(runs)

    onboarding, dunning = timed(OnboardingPolicy()), timed(DunningPolicy())
    return {
        "customers": count,
        "onboarding_ms": round(onboarding * 1000, 1),
        "dunning_ms": round(dunning * 1000, 1),
        "ratio": round(dunning / onboarding, 2),
    }


def run(argv: list[str]) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="bench/run.py webhooks")
    parser.add_argument("--deliveries", type=int, default=300)
    parser.add_argument("--customers", type=int, default=100_000)
    args = parser.parse_args(argv)
    configure_logging("error", "json", stream=sys.stderr)
    with tempfile.TemporaryDirectory() as scratch:
        url = f"sqlite+aiosqlite:///{scratch}/bench.db"
        hooks = anyio.run(_deliveries, url, args.deliveries)
    policies = _policies(args.customers)
    print({"webhooks": hooks, "policies": policies}, flush=True)
    summary = [
        {
            "benchmark": "13. webhooks",
            "measure": f"POST /webhooks/stripe, {hooks['deliveries']} signed deliveries, sqlite: "
            "median latency / GET /healthz on the same server",
            "target": "measured, no target",
            "measured": f"{hooks['delivery_median_ms']:.1f} ms / "
            f"{hooks['healthz_median_ms']:.1f} ms = {hooks['ratio']:g}x",
            "meets": True,
        },
        {
            "benchmark": "13. webhooks",
            "measure": f"dunning policy evaluate, {policies['customers']:,} customers: "
            "median / onboarding policy on the same snapshot",
            "target": "no more than onboarding (1x)",
            "measured": f"{policies['dunning_ms']:.0f} ms / {policies['onboarding_ms']:.0f} ms "
            f"= {policies['ratio']:g}x",
            "meets": policies["ratio"] <= 1.25,
        },
    ]
    return save("webhooks", {"webhooks": hooks, "policies": policies, "summary": summary})
