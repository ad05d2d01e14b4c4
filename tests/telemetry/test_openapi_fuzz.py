"""docs/openapi.yaml against a real `jarvis run`: schemathesis fuzzes every route it serves.

The daemon runs on the embedded default (SQLite in tmp_path, the simulated
fleet) with both tokens, and with customers configured (Stripe a loopback
stand-in, one customer in the table, no customer action allowed) so that it
serves ``/webhooks/stripe`` and ``/unsubscribe`` too. Each operation of the
document gets a fixed, derandomized budget of generated requests, then
schemathesis's deterministic coverage cases, once per caller: no token, a wrong
token, the read token and the admin token (a bearer header, and for the page's
forms a session logged in with it). Most requests carry what a genuine client
has: the session's CSRF token, a Stripe signature over the body, an unsubscribe
token the daemon signed (for the customer, or for one not in the table). Every
answer must be what the document says (no 5xx; status, content type, headers
and body as declared; a route that needs a credential refuses one without).
On top of that: nothing changed while no admin token was presented, every
kill-switch flip names ``admin-token``, and the daemon is still ready with no
traceback in its log.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import anyio
import hypothesis.strategies as st
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core import NotSet
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from jarvis.actuators.customers.webhooks import HANDLED
from jarvis.mail import unsubscribe_token
from tests.billing.conftest import UNSUBSCRIBE_SECRET, seed_customer, serving_customers
from tests.billing.stripe_events import SECRET, sign
from tests.billing.stripe_standin import running as stripe_running
from tests.cli.conftest import jarvis_env
from tests.daemon import Daemon, get, running
from tests.telemetry.page_support import ADMIN_TOKEN, READ_TOKEN, login

DOCUMENT: Final = Path(__file__).parents[2] / "docs" / "openapi.yaml"
EXAMPLES: Final = 40
"""Generated requests per operation and caller (16 operations, 4 callers: about 30 s here)."""
WRONG_TOKEN: Final = "not-the-token-0123456789"
CHECKS: Final = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    ignored_auth,
]
# Where a request the document calls invalid must be a 4xx; the page's forms answer every
# session's change, refused ones too, with a redirect to the page that says why.
JSON_BODIES: Final = frozenset({"POST /v1/killswitch", "GET /ui/events"})
CUSTOMER: Final = "c1"
STRIPE_CUSTOMER: Final = "cus_1"
HANDLED_TYPES: Final = sorted(HANDLED)
EVENT_IDS: Final = itertools.count()
STARTED: Final = int(time.time())
CHANGES: Final = (
    "SELECT kind, payload FROM events WHERE kind LIKE 'killswitch.%' OR kind = 'retries.reset'"
    " OR policy = 'operator' ORDER BY id"
)


@dataclass(frozen=True, slots=True)
class Caller:
    """Who the fuzzer asks as: its bearer token and, for the page's forms, its session."""

    name: str
    token: str | None
    cookie: str | None = None
    csrf: str | None = None


def changes(db: Path) -> list[tuple[str, str]]:
    """Every change a request can cause, as (kind, payload) rows of the events table."""
    with closing(sqlite3.connect(db)) as connection:
        return [(str(k), str(p)) for k, p in connection.execute(CHANGES).fetchall()]


def as_genuine(case: Any, caller: Caller, kind: str) -> None:
    """Give ``case`` what a genuine client of its route has, ``kind`` of it (``forged``: none):
    the session's CSRF token, a Stripe signature over the body it sends, an unsubscribe
    token for the customer (``genuine``) or for one not in the table (``gone``)."""
    if kind == "forged":
        return
    if caller.csrf and isinstance(case.body, dict) and case.path.startswith(("/ui/", "/logout")):
        case.body["csrf"] = caller.csrf
    if case.path == "/webhooks/stripe" and not isinstance(case.body, bytes | NotSet):
        data = case.body.get("data") if isinstance(case.body, dict) else None
        obj = data.get("object") if isinstance(data, dict) else None
        if kind == "genuine" and isinstance(obj, dict):
            # As Stripe sends: an event id never sent before, of a type Jarvis handles,
            # about the customer in the table, newer than the last (so it is applied).
            sent = next(EVENT_IDS)
            kind_of = HANDLED_TYPES[sent % len(HANDLED_TYPES)]
            case.body |= {"id": f"evt_{sent}", "type": kind_of, "created": STARTED + sent}
            obj["customer"] = STRIPE_CUSTOMER
        try:
            raw = json.dumps(case.body, allow_nan=False).encode()
        except ValueError:
            return
        case.body = raw  # sent as these bytes, which the signature covers
        case.headers = {**(case.headers or {}), "Stripe-Signature": sign(raw, secret=SECRET)}
    if case.path == "/unsubscribe":
        whom = CUSTOMER if kind == "genuine" else "no-such-customer"
        token = unsubscribe_token(whom, UNSUBSCRIBE_SECRET.encode())
        case.query = {**(case.query or {}), "token": token}


def fuzz_one(
    operation: Any, daemon: Daemon, caller: Caller, fresh: Callable[[], Caller] | None
) -> None:
    """``operation``'s budget of generated requests as ``caller``; raises at the first failure."""
    cases = st.one_of(operation.as_strategy(), operation.as_strategy(GenerationMode.NEGATIVE))
    checks = [*CHECKS, negative_data_rejection] if operation.label in JSON_BODIES else CHECKS

    def send(case: Any, *, kind: str, more: tuple[Any, ...] = ()) -> None:
        # A logout ends the session it is sent with: each gets a session of its own.
        who = fresh() if operation.path == "/logout" and fresh is not None else caller
        headers = {"Authorization": f"Bearer {who.token}"} if who.token else {}
        cookies = {"jarvis_session": who.cookie} if who.cookie else {}
        as_genuine(case, who, kind)
        case.call_and_validate(
            base_url=daemon.base,
            headers=headers,
            cookies=cookies,
            checks=[*checks, *more],
            allow_redirects=False,
            timeout=60,
        )

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases, kind=st.sampled_from(["genuine", "gone", "forged"]))
    def generated(case: Any, kind: str) -> None:
        send(case, kind=kind)

    generated()
    # Then schemathesis's deterministic cases: boundaries, wrong types, missing fields,
    # wrong content types, and every method the path does not document (a 405 with Allow).
    modes = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]
    config = operation.schema.config.generation_for(operation=operation)
    for case in operation.schema.iter_coverage_cases(
        operation, generation_modes=modes, generation_config=config
    ):
        send(case, kind="genuine", more=(unsupported_method,))


def fuzz(
    schema: Any, daemon: Daemon, caller: Caller, fresh: Callable[[], Caller] | None = None
) -> list[str]:
    """Every served operation's budget of requests as ``caller`` (``fresh`` logs it in anew
    for each logout); the failures, one each."""
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        try:
            fuzz_one(operation, daemon, caller, fresh)
        except (AssertionError, FailureGroup) as exc:
            failures.append(f"{caller.name} {operation.label}: {str(exc)[:3000]}")
    return failures


@pytest.mark.timeout(300)
def test_the_port_answers_as_its_openapi_document_says(tmp_path: Path) -> None:
    """Generated requests from four callers get only answers the document declares, and only
    the admin token changes anything."""
    with stripe_running() as stripe_api:
        env = jarvis_env(
            tmp_path,
            JARVIS_ADMIN_TOKEN=ADMIN_TOKEN,
            JARVIS_READ_TOKEN=READ_TOKEN,
            JARVIS_HTTP__HOST="127.0.0.1",
            JARVIS_HTTP__TRUSTED_PROXIES='["127.0.0.0/8"]',
            **serving_customers(tmp_path, stripe_api.url),
        )
        anyio.run(seed_customer, env["JARVIS_DATABASE_URL"], CUSTOMER, STRIPE_CUSTOMER)
        db = tmp_path / "jarvis.db"
        schema = schemathesis.openapi.from_path(DOCUMENT)
        logins = iter(range(1, 1_000_000))
        with running(tmp_path, env, "--interval", "1") as daemon:

            def session_of(name: str, token: str) -> Callable[[], Caller]:
                def fresh() -> Caller:
                    cookie, csrf = login(daemon.base, token, f"198.51.100.{next(logins) % 250 + 1}")
                    return Caller(name, token, cookie, csrf)

                return fresh

            failures: list[str] = []
            for name, token in [("no token", None), ("wrong token", WRONG_TOKEN)]:
                anonymous = Caller(name, token)
                failures += fuzz(schema, daemon, anonymous)
                assert changes(db) == [], f"{name} changed something"
            reader = session_of("read token", READ_TOKEN)
            failures += fuzz(schema, daemon, reader(), reader)
            assert changes(db) == [], "the read token changed something"
            admin = session_of("admin token", ADMIN_TOKEN)
            failures += fuzz(schema, daemon, admin(), admin)

            status, body = get(f"{daemon.base}/readyz", ADMIN_TOKEN)
            assert status == 200, body
            made = changes(db)
            assert any(k.startswith("killswitch.") for k, _ in made), (
                "the admin token flipped nothing"
            )
            flips = [(k, p) for k, p in made if k.startswith("killswitch.")]
            assert all(json.loads(p)["actor"] == "admin-token" for _, p in flips), flips
            assert all(json.loads(p).get("actor", "admin-token") == "admin-token" for _, p in made)
            log = daemon.stop()
        assert "Traceback" not in log, log[-5000:]
        assert not failures, "\n\n".join(failures)
