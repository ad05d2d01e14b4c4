"""A local Stripe stand-in: the few endpoints Jarvis calls, in Stripe's wire format.

Customers (create, retrieve, search), coupons (create) and promotion codes
(create, list by ``code``/``customer``/``active``), with Stripe's rules where
Jarvis depends on them: a promotion code needs an existing coupon and, when
restricted, an existing customer; an active code is unique per customer
(case-insensitive); integers arrive as form strings and go back as numbers.

Requests are form-encoded with bracketed keys (``metadata[jarvis_customer_id]=c1``)
and authenticated with ``Authorization: Bearer sk_…``; answers are Stripe's JSON
objects, errors Stripe's error object (``{"error": {"type", "code", "message"}}``)
with its status codes. ``Idempotency-Key`` follows Stripe's rules: the same key
with the same parameters replays the first answer (``Idempotent-Replayed: true``)
without acting again; with other parameters it is a 400 ``idempotency_error``.
Search answers ``metadata['KEY']:'VALUE'`` queries (``search_result`` objects).
Subscriptions and invoices are only read (``GET /v1/subscriptions/ID``,
``GET /v1/invoices/ID``), as the webhook does when an event's order is in
doubt; tests put the objects they mean Stripe to hold in ``subscriptions`` and
``invoices``.
Runs in its own thread on 127.0.0.1 and a free port, so the blocking client can
call it from anywhere; every request is kept in ``calls``, the witness tests read.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

API_KEY = "sk_test_jarvis_standin"

_QUERY = re.compile(r"^metadata\['(?P<key>[^']+)'\]:'(?P<value>(?:[^'\\]|\\.)*)'$")


def parse_form(body: str) -> dict[str, Any]:
    """Stripe's form encoding: ``a[b]=1&c[]=x`` → ``{"a": {"b": "1"}, "c": ["x"]}``."""
    out: dict[str, Any] = {}
    for name, value in parse_qsl(body, keep_blank_values=True):
        is_list = name.endswith("[]")
        parts = re.findall(r"[^\[\]]+", name)
        node: Any = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        if is_list:
            node.setdefault(parts[-1], []).append(value)
        else:
            node[parts[-1]] = value
    return out


@dataclass
class Call:
    method: str
    path: str
    params: dict[str, Any]
    idempotency_key: str | None
    replayed: bool = False


@dataclass
class StripeStandIn:
    customers: dict[str, dict[str, Any]] = field(default_factory=dict)
    subscriptions: dict[str, dict[str, Any]] = field(default_factory=dict)
    invoices: dict[str, dict[str, Any]] = field(default_factory=dict)
    coupons: dict[str, dict[str, Any]] = field(default_factory=dict)
    promotion_codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    fail_next: list[int] = field(default_factory=list)
    """Statuses to answer the next requests with (500 → ``api_error``), first first."""
    _keys: dict[str, tuple[dict[str, Any], int, dict[str, Any]]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def created(self, path: str = "/v1/customers") -> list[Call]:
        """Creates at ``path`` that made an object (not replays)."""
        return [c for c in self.calls if c.method == "POST" and not c.replayed and c.path == path]

    def handle(
        self, method: str, target: str, headers: Any, body: str
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        split = urlsplit(target)
        params = parse_form(body if method == "POST" else split.query)
        key = headers.get("Idempotency-Key")
        with self._lock:
            call = Call(method, split.path, params, key)
            self.calls.append(call)
            if headers.get("Authorization") != f"Bearer {API_KEY}":
                return _error(401, "invalid_request_error", None, "Invalid API Key provided")
            if self.fail_next:
                status = self.fail_next.pop(0)
                return _error(status, "api_error", None, "An unknown error occurred")
            if method == "POST" and key is not None:
                seen = self._keys.get(key)
                if seen is not None:
                    first_params, status, answer = seen
                    if first_params != params:
                        return _error(
                            400,
                            "idempotency_error",
                            None,
                            "Keys for idempotent requests can only be used with the same "
                            "parameters they were first used with.",
                        )
                    call.replayed = True
                    return status, answer, {"Idempotent-Replayed": "true"}
            status, answer, extra = self._route(method, split.path, params)
            if method == "POST" and key is not None and status < 500:
                self._keys[key] = (params, status, answer)
            return status, answer, extra

    def _route(
        self, method: str, path: str, params: dict[str, Any]
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        if path in {"/v1/coupons", "/v1/promotion_codes"}:
            return self._discounts(method, path, params)
        return self._customers(method, path, params)

    def _customers(
        self, method: str, path: str, params: dict[str, Any]
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        if method == "POST" and path == "/v1/customers":
            customer = {
                "id": f"cus_{secrets.token_hex(7)}",
                "object": "customer",
                "created": int(time.time()),
                "email": params.get("email"),
                "name": params.get("name"),
                "metadata": params.get("metadata", {}),
                "livemode": False,
                "balance": 0,
                "currency": None,
                "delinquent": False,
                "description": params.get("description"),
            }
            self.customers[customer["id"]] = customer
            return 200, customer, {}
        if method == "GET" and path == "/v1/customers/search":
            match = _QUERY.match(params.get("query", ""))
            if match is None:
                return _error(400, "invalid_request_error", "parameter_invalid", "Invalid query")
            value = re.sub(r"\\(.)", r"\1", match["value"])
            data = [c for c in self.customers.values() if c["metadata"].get(match["key"]) == value]
            limit = int(params.get("limit", 10))
            return (
                200,
                {
                    "object": "search_result",
                    "data": data[:limit],
                    "has_more": len(data) > limit,
                    "next_page": None,
                    "url": "/v1/customers/search",
                },
                {},
            )
        found = re.fullmatch(r"/v1/(customers|subscriptions|invoices)/(\w+)", path)
        if method == "GET" and found:
            objects = {
                "customers": self.customers,
                "subscriptions": self.subscriptions,
                "invoices": self.invoices,
            }[found[1]]
            known = objects.get(found[2])
            if known is None:
                return _error(
                    404,
                    "invalid_request_error",
                    "resource_missing",
                    f"No such {found[1][:-1]}: '{found[2]}'",
                )
            return 200, known, {}
        return _error(
            404, "invalid_request_error", None, f"Unrecognized request URL ({method}: {path})"
        )

    def _discounts(
        self, method: str, path: str, params: dict[str, Any]
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        if method == "POST" and path == "/v1/coupons":
            if "percent_off" not in params and "amount_off" not in params:
                return _error(
                    400,
                    "invalid_request_error",
                    "parameter_missing",
                    "Must provide either percent_off or amount_off",
                )
            coupon = {
                "id": params.get("id") or secrets.token_hex(4),
                "object": "coupon",
                "percent_off": float(params["percent_off"]) if "percent_off" in params else None,
                "duration": params.get("duration", "once"),
                "max_redemptions": _int(params.get("max_redemptions")),
                "times_redeemed": 0,
                "valid": True,
                "name": params.get("name"),
                "metadata": params.get("metadata", {}),
            }
            self.coupons[coupon["id"]] = coupon
            return 200, coupon, {}
        if method == "POST":
            return self._create_promotion_code(params)
        data = [
            p
            for p in self.promotion_codes.values()
            if all(
                str(p[name]).lower() == str(params[name]).lower()
                for name in ("code", "customer", "active")
                if name in params
            )
        ]
        limit = int(params.get("limit", 10))
        return (
            200,
            {"object": "list", "data": data[:limit], "has_more": len(data) > limit, "url": path},
            {},
        )

    def _create_promotion_code(
        self, params: dict[str, Any]
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        promotion = params.get("promotion") or {}
        coupon = self.coupons.get(promotion.get("coupon", ""))
        if promotion.get("type") != "coupon" or coupon is None:
            return _error(
                400,
                "invalid_request_error",
                "resource_missing",
                f"No such coupon: '{promotion.get('coupon')}'",
            )
        customer = params.get("customer")
        if customer is not None and customer not in self.customers:
            return _error(
                400, "invalid_request_error", "resource_missing", f"No such customer: '{customer}'"
            )
        code = params.get("code") or secrets.token_hex(4).upper()
        for known in self.promotion_codes.values():
            if (
                known["active"]
                and known["customer"] == customer
                and known["code"].lower() == code.lower()
            ):
                return _error(
                    400,
                    "invalid_request_error",
                    None,
                    f"An active promotion code with `code: {code}` already exists.",
                )
        made = {
            "id": f"promo_{secrets.token_hex(7)}",
            "object": "promotion_code",
            "active": True,
            "code": code,
            "customer": customer,
            "expires_at": _int(params.get("expires_at")),
            "max_redemptions": _int(params.get("max_redemptions")),
            "times_redeemed": 0,
            "promotion": {"type": "coupon", "coupon": coupon},
            "metadata": params.get("metadata", {}),
            "livemode": False,
        }
        self.promotion_codes[made["id"]] = made
        return 200, made, {}


def _int(value: str | None) -> int | None:
    return None if value is None else int(value)


def _error(
    status: int, kind: str, code: str | None, message: str
) -> tuple[int, dict[str, Any], dict[str, str]]:
    error: dict[str, Any] = {"type": kind, "message": message}
    if code is not None:
        error["code"] = code
    return status, {"error": error}, {}


@contextmanager
def running() -> Iterator[StripeStandIn]:
    """A stand-in on 127.0.0.1 and a free port, stopped on the way out."""
    standin = StripeStandIn()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode() if length else ""
            status, answer, extra = standin.handle(method, self.path, self.headers, body)
            payload = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("Request-Id", f"req_{secrets.token_hex(7)}")
            for name, value in extra.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        def do_GET(self) -> None:
            self._answer("GET")

        def do_POST(self) -> None:
            self._answer("POST")

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    standin.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield standin
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
