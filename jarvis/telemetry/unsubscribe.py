"""``GET/POST /unsubscribe?token=…``: a customer refuses marketing email.

Served by the daemon's HTTP server (`jarvis.telemetry.http`) when customer
email is configured with an unsubscribe secret; `jarvis.cli.surfaces` wires
``opt_out`` to the customers sensor, which writes ``marketing_opt_out`` to
Jarvis's ``customers`` table (never to a product database). The token is the
one the mailer signs into the link (`jarvis.mail.unsubscribe_token`): no login,
and no way to unsubscribe a customer whose link one was not sent.

Only POST opts out. Mail scanners (Defender Safe Links, Mimecast, Proofpoint)
open every link in a message with GET before the customer reads it, so GET,
the link a person clicks, answers a short HTML page whose button POSTs, and
changes nothing. POST is that button and RFC 8058's one-click
(``List-Unsubscribe=One-Click`` in the body, sent by the mail client): it
answers a confirmation page to a browser (``Accept: text/html``) and JSON to
anything else. HEAD is a 405. A bad token is 400 and changes nothing; a valid
token for a customer no longer in the table is 404, a table that cannot be
written 503, logged as one warning naming the database when it is away
(``outage``, `jarvis.telemetry.outages`) and with its traceback otherwise.
Opting out twice is fine.
Like the rest of this package it imports nothing of the loop or the app.
"""

from __future__ import annotations

import html
from collections.abc import Awaitable, Callable
from typing import Final
from urllib.parse import quote

import structlog
from aiohttp import web

from jarvis.mail import verify_unsubscribe_token
from jarvis.telemetry.outages import Outage, log_failure

__all__ = ["Unsubscribe"]

log = structlog.get_logger(__name__)

_ASK = """<!doctype html>
<html><head><meta charset="utf-8"><title>Unsubscribe</title></head>
<body><form method="post" action="{action}">
<input type="hidden" name="List-Unsubscribe" value="One-Click">
<p>Stop marketing email from us? <button type="submit">Unsubscribe</button></p>
</form></body></html>
"""
_DONE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Unsubscribed</title></head>
<body><p>You will get no more marketing email from us.</p></body></html>
"""
_PAGE_HEADERS: Final = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'none'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


class Unsubscribe:
    """Checks the token, then records the opt-out through ``opt_out(customer_id) -> known``;
    ``outage`` says which of its failures are the table's database away."""

    def __init__(
        self, *, secret: bytes, opt_out: Callable[[str], Awaitable[bool]], outage: Outage
    ) -> None:
        self._secret = secret
        self._opt_out = opt_out
        self._outage = outage

    def add_routes(self, app: web.Application) -> None:
        # No HEAD: link checkers send it as a safe look; it has nothing to show them.
        app.router.add_get("/unsubscribe", self.handle, allow_head=False)
        app.router.add_post("/unsubscribe", self.handle)

    async def handle(self, request: web.Request) -> web.Response:
        token = request.query.get("token", "")
        customer_id = verify_unsubscribe_token(token, self._secret)
        if customer_id is None:
            return web.json_response({"error": "invalid unsubscribe token"}, status=400)
        if request.method == "GET":
            # Relative: the form posts back to this path, whatever prefix an ingress adds.
            action = html.escape(f"?token={quote(token, safe='')}")
            return _page(_ASK.format(action=action))
        try:
            known = await self._opt_out(customer_id)
        except Exception as exc:  # noqa: BLE001 - logged by log_failure, traceback for a bug
            # Try later, never a 500. The error's text may name the database; the log
            # keeps it, the answer does not.
            log_failure(self._outage, exc, "customer.unsubscribe_failed", customer=customer_id)
            error = {"error": "unsubscribe unavailable; try the link again later"}
            return web.json_response(error, status=503)
        if not known:
            return web.json_response({"error": "no such customer"}, status=404)
        log.info("customer.unsubscribed", customer=customer_id, method=request.method)
        if "text/html" in request.headers.get("Accept", ""):
            return _page(_DONE)
        return web.json_response({"status": "unsubscribed"})


def _page(body: str) -> web.Response:
    return web.Response(text=body, content_type="text/html", headers=_PAGE_HEADERS)
