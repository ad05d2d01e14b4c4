"""`jarvis run` as a real process: a signed Stripe webhook in, one dunning email out."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import anyio

from tests.billing.conftest import seed_customer
from tests.billing.stripe_events import SECRET, event, invoice, sign
from tests.billing.stripe_standin import API_KEY, StripeStandIn
from tests.cli.conftest import jarvis_env
from tests.daemon import running
from tests.smtp_inbox import Inbox

CONFIG = """
[simulated]
enabled = false

[[allowlist]]
provider = "customer"
resources = "*"
actions = ["create_billing_customer", "send_email", "grant_access", "revoke_access"]

[customers]
enabled = true

[customers.stripe]
api_base = "{stripe}"

[customers.email]
host = "127.0.0.1"
port = {smtp}
sender = "hello@jarvis.test"
starttls = false
"""


def _post(url: str, body: bytes, signature: str) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(url, data=body, method="POST")  # noqa: S310 - loopback URL built by the test
    request.add_header("Content-Type", "application/json")
    request.add_header("Stripe-Signature", signature)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_the_daemon_records_a_signed_failure_and_sends_one_email(
    tmp_path: Path, stripe_api: StripeStandIn, inbox: Inbox
) -> None:
    """Bad signature 400; the signed event 200; the loop mails the hosted link once; exit 0."""
    config = tmp_path / "jarvis.toml"
    config.write_text(CONFIG.format(stripe=stripe_api.url, smtp=inbox.port))
    env = jarvis_env(
        tmp_path,
        JARVIS_CONFIG=str(config),
        JARVIS_HTTP__HOST="127.0.0.1",
        STRIPE_SECRET_KEY=API_KEY,
        STRIPE_WEBHOOK_SECRET=SECRET,
    )
    anyio.run(seed_customer, env["JARVIS_DATABASE_URL"], "c1", "cus_1")
    with running(tmp_path, env, "--interval", "1", ready="/healthz") as daemon:
        url = f"{daemon.base}/webhooks/stripe"
        body = event("evt_1", "invoice.payment_failed", 100, invoice("in_1", "open"))
        assert _post(url, body, sign(body, secret="whsec_wrong"))[0] == 400
        assert _post(url, body, sign(body)) == (200, {"outcome": "applied", "event": "evt_1"})
        assert _post(url, body, sign(body)) == (200, {"outcome": "replayed", "event": "evt_1"})
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not inbox.messages:
            time.sleep(0.2)
        assert len(inbox.messages) == 1
        parts = {p.get_content_type(): p.get_content() for p in inbox.messages[0].iter_parts()}
        assert "https://invoice.stripe.test/i/in_1" in parts["text/plain"]
        output = daemon.stop()
    assert daemon.process.returncode == 0, output[-3000:]
    assert len(inbox.messages) == 1
    assert "c1@customers.test" not in output
