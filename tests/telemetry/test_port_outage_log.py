"""The rest of the HTTP port with its database or its kill switch's Redis away: one log line.

The admin API already said an outage as one warning naming the server
(`tests/telemetry/test_admin_outage_log.py`). Before, the rest of the port did not:
``POST /unsubscribe`` answered 503 but logged the driver's whole traceback at error
level; a signed Stripe webhook was a 500 with a traceback (the connection refused
escaped the customers ledger as it is, no SQLAlchemy error); the status page's feed
answered 503 and logged nothing; its forms logged only the exception's type in the
audited request's line. Each now answers what it answered to the client (the webhook
a 503, so that Stripe delivers it again) and logs one warning whose ``error`` is the
store's line naming the server. A real `jarvis run` on a private PostgreSQL, or a private
Redis, stopped under it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import anyio
import requests

from jarvis.mail import unsubscribe_token
from jarvis.store import upgrade
from tests.billing.conftest import UNSUBSCRIBE_SECRET, seed_customer, serving_customers
from tests.billing.stripe_events import event, invoice, sign
from tests.billing.stripe_standin import running as stripe_running
from tests.cli.conftest import jarvis_env
from tests.daemon import Daemon, logged, running
from tests.private_postgres import SUPERUSER_PASSWORD, private_postgres
from tests.private_redis import private_redis
from tests.telemetry.page_support import ADMIN_TOKEN, login

BEARER: Final = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def daemon_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A `jarvis run` on loopback with the admin token (the page's forms), and ``extra``."""
    return jarvis_env(
        tmp_path, JARVIS_ADMIN_TOKEN=ADMIN_TOKEN, JARVIS_HTTP__HOST="127.0.0.1", **extra
    )


def one_warning_naming(line: dict[str, object], server: str) -> None:
    """``line`` is a warning whose ``error`` is one line naming ``server``, with no traceback."""
    assert line["level"] == "warning", line
    error = line["error"]
    assert isinstance(error, str), line
    assert server in error, line
    assert error.isprintable(), line
    assert "exception" not in line, line


def form(daemon: Daemon, path: str, session: tuple[str, str], **fields: str) -> None:
    """Post a page form as the logged-in ``session``: it answers a redirect back to the page."""
    cookie, csrf = session
    answer = requests.post(
        f"{daemon.base}{path}",
        data={"csrf": csrf, **fields},
        cookies={"jarvis_session": cookie},
        allow_redirects=False,
        timeout=60,
    )
    assert (answer.status_code, answer.headers.get("Location")) == (303, "/"), answer.text


def test_the_port_with_its_database_away_answers_503_and_logs_one_line_naming_it(
    tmp_path: Path,
) -> None:
    """PostgreSQL stops: /unsubscribe, the Stripe webhook and the page's feed answer 503 with
    the bodies they always had, the page's forms go back to the page, and each logs one
    warning naming the server, none a traceback."""
    with (
        stripe_running() as stripe_api,
        private_postgres(["host all all 127.0.0.1/32 scram-sha-256"]) as pg,
    ):
        url = pg.url("postgres", SUPERUSER_PASSWORD)
        anyio.run(upgrade, url)
        anyio.run(seed_customer, url, "c1", "cus_1")
        env = daemon_env(
            tmp_path, JARVIS_DATABASE_URL=url, **serving_customers(tmp_path, stripe_api.url)
        )
        with running(tmp_path, env, "--interval", "60") as daemon:
            session = login(daemon.base, ADMIN_TOKEN, "198.51.100.7")
            pg.halt()
            token = unsubscribe_token("c1", UNSUBSCRIBE_SECRET.encode())
            answer = requests.post(
                f"{daemon.base}/unsubscribe", params={"token": token}, timeout=60
            )
            assert answer.status_code == 503, answer.text
            assert answer.json() == {"error": "unsubscribe unavailable; try the link again later"}

            body = event("evt_1", "invoice.payment_failed", 100, invoice("in_1", "open"))
            answer = requests.post(
                f"{daemon.base}/webhooks/stripe",
                data=body,
                headers={"Stripe-Signature": sign(body), "Content-Type": "application/json"},
                timeout=60,
            )
            assert answer.status_code == 503, answer.text
            assert answer.json() == {"outcome": "unavailable", "error": "unavailable"}

            answer = requests.get(f"{daemon.base}/ui/events", headers=BEARER, timeout=60)
            assert answer.status_code == 503, answer.text
            assert answer.json() == {"error": "events unavailable (StoreError)"}

            form(daemon, "/ui/killswitch", session, action="engage", reason="drill")
            form(daemon, "/ui/retries/reset", session, resource="sim://ai-dawg-ai-brain")
            output = daemon.stop()

    server = f"127.0.0.1:{pg.port}"
    (unsubscribe,) = logged(output, "customer.unsubscribe_failed")
    one_warning_naming(unsubscribe, server)
    assert unsubscribe["customer"] == "c1", unsubscribe
    (webhook,) = logged(output, "stripe webhook not recorded")
    one_warning_naming(webhook, server)
    failed = logged(output, "admin.backend_failed")
    assert [line["doing"] for line in failed] == [
        "reading the events",
        "setting the kill switch",
        "resetting a quarantine",
    ], output[-3000:]
    for line in failed:
        one_warning_naming(line, server)
    assert logged(output, "http.handler_failed") == [], output[-3000:]
    assert "Traceback" not in output, output[-3000:]


def test_the_page_with_its_kill_switch_redis_away_logs_one_line_naming_it(
    tmp_path: Path,
) -> None:
    """Redis stops: the page's kill-switch form goes back to the page saying it could not,
    and logs one warning naming Redis, not only the exception's type."""
    with private_redis(tmp_path) as server:
        env = daemon_env(tmp_path, JARVIS_REDIS_URL=server.url)
        with running(tmp_path, env, "--interval", "60") as daemon:
            session = login(daemon.base, ADMIN_TOKEN, "198.51.100.7")
            server.stop()
            form(daemon, "/ui/killswitch", session, action="engage", reason="drill")
            output = daemon.stop()

    (flip,) = [line for line in logged(output, "admin.request") if line["path"] == "/ui/killswitch"]
    assert flip["result"] == "error", flip
    (failed,) = logged(output, "admin.backend_failed")
    assert failed["doing"] == "setting the kill switch", failed
    one_warning_naming(failed, f"127.0.0.1:{server.port}")
    assert "Traceback" not in output, output[-3000:]
