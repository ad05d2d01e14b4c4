"""Loopback stand-ins for Slack, PagerDuty and an SMTP server, checking documented shapes.

One aiohttp server (on its own thread and event loop, so a daemon subprocess
and an async test can both talk to it) answers:

- ``POST /slack/<anything>`` as a Slack incoming webhook: a JSON object with
  ``text`` and/or ``blocks``; Block Kit limits (50 blocks, a header's
  plain_text at most 150 characters, a section's text at most 3000, a
  context at most 10 elements); ``200 ok``, or ``400 invalid_blocks``.
- ``POST /v2/enqueue`` as PagerDuty Events API v2: a 32-character
  ``routing_key``, ``event_action`` trigger | acknowledge | resolve, a
  ``dedup_key`` of at most 255 characters, and for a trigger a ``payload``
  with ``summary`` (at most 1024), ``source`` and ``severity`` (critical,
  error, warning, info); ``202`` with status/message/dedup_key, or ``400``
  "invalid event" with the errors.

``fail_next[route] = n`` makes the next n requests to that route answer 500;
``throttle_next[route] = n`` makes them answer 429 with ``Retry-After:
retry_after`` seconds, as both services do when rate limited;
``garble_next[route] = n`` makes them answer 502 with a Windows-1252 error
page (not UTF-8), as a proxy in front of a receiver may;
``redirect_next[route] = n`` makes them answer 302 to ``/moved``, which
answers ``200 ok`` to anything and keeps nothing (``moved`` counts its requests).
SMTP is a real aiosmtpd server on another free port (`tests.smtp_inbox.Inbox`):
``unknown_mailboxes`` are refused at RCPT TO while the other recipients are
taken, and ``lose_smtp_replies(n)`` keeps n messages but answers 451 to each.
"""

from __future__ import annotations

import asyncio
import threading
from datetime import datetime
from email.message import EmailMessage
from typing import Any

from aiohttp import web

from tests.loopback import free_port
from tests.smtp_inbox import Inbox

PD_SEVERITIES = {"critical", "error", "warning", "info"}
BLOCK_TYPES = {"header", "section", "context", "divider", "actions", "image", "rich_text"}


def slack_errors(body: Any) -> list[str]:
    """What Slack would refuse in an incoming-webhook body (empty when valid)."""
    if not isinstance(body, dict):
        return ["body is not a JSON object"]
    errors: list[str] = []
    if not body.get("text") and not body.get("blocks"):
        errors.append("no text and no blocks")
    blocks = body.get("blocks", [])
    if not isinstance(blocks, list) or len(blocks) > 50:
        return [*errors, "blocks must be a list of at most 50"]
    for i, block in enumerate(blocks):
        errors.extend(f"block {i}: {e}" for e in _block_errors(block))
    return errors


def _block_errors(block: dict[str, Any]) -> list[str]:
    kind = block.get("type")
    if kind not in BLOCK_TYPES:
        return [f"unknown type {kind!r}"]
    text = block.get("text", {})
    if kind == "header" and (
        text.get("type") != "plain_text" or not 0 < len(text.get("text", "")) <= 150
    ):
        return ["header needs plain_text of 1..150 characters"]
    if kind == "section" and (
        text.get("type") not in {"mrkdwn", "plain_text"}
        or not 0 < len(text.get("text", "")) <= 3000
    ):
        return ["section needs mrkdwn or plain_text of 1..3000 characters"]
    if kind == "context" and not 0 < len(block.get("elements", [])) <= 10:
        return ["context needs 1..10 elements"]
    return []


def pagerduty_errors(body: Any) -> list[str]:
    """What the Events API v2 would refuse (empty when valid)."""
    if not isinstance(body, dict):
        return ["body is not a JSON object"]
    errors: list[str] = []
    key = body.get("routing_key")
    if not isinstance(key, str) or len(key) != 32:
        errors.append("routing_key must be 32 characters")
    action = body.get("event_action")
    if action not in {"trigger", "acknowledge", "resolve"}:
        errors.append("event_action must be trigger, acknowledge or resolve")
    dedup = body.get("dedup_key")
    if action != "trigger" and not dedup:
        errors.append("dedup_key is required to acknowledge or resolve")
    if dedup is not None and (not isinstance(dedup, str) or len(dedup) > 255):
        errors.append("dedup_key must be a string of at most 255 characters")
    if action == "trigger":
        errors.extend(_payload_errors(body.get("payload")))
    return errors


def _payload_errors(payload: Any) -> list[str]:
    if not isinstance(payload, dict):
        return ["payload is required to trigger"]
    errors: list[str] = []
    summary = payload.get("summary")
    if not isinstance(summary, str) or not 0 < len(summary) <= 1024:
        errors.append("payload.summary must be 1..1024 characters")
    if not payload.get("source"):
        errors.append("payload.source is required")
    if payload.get("severity") not in PD_SEVERITIES:
        errors.append("payload.severity must be critical, error, warning or info")
    if "timestamp" in payload:
        try:
            datetime.fromisoformat(payload["timestamp"])
        except (TypeError, ValueError):
            errors.append("payload.timestamp must be ISO 8601")
    return errors


class Receivers:
    """Slack, PagerDuty and SMTP on loopback; what each received, in order."""

    def __init__(self) -> None:
        self.http_port = free_port()
        self.slack: list[dict[str, Any]] = []
        self.pagerduty: list[dict[str, Any]] = []
        self.requests: dict[str, int] = {"slack": 0, "pagerduty": 0}
        self.fail_next: dict[str, int] = {"slack": 0, "pagerduty": 0}
        self.throttle_next: dict[str, int] = {"slack": 0, "pagerduty": 0}
        self.retry_after = 120
        self.garble_next: dict[str, int] = {"slack": 0, "pagerduty": 0}
        self.redirect_next: dict[str, int] = {"slack": 0, "pagerduty": 0}
        self.moved = 0
        # While `holding` is set, PagerDuty takes an event, sets `arrived`, and
        # answers only once `released` is set: a receiver slow to answer.
        self.holding = threading.Event()
        self.released = threading.Event()
        self.arrived = threading.Event()
        self._inbox = Inbox()
        self.smtp_port = self._inbox.port
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    @property
    def emails(self) -> list[EmailMessage]:
        return self._inbox.messages

    @property
    def envelopes(self) -> list[list[str]]:
        """Whom each email was taken for (its RCPT TO addresses the server accepted)."""
        return self._inbox.envelopes

    def lose_smtp_replies(self, n: int) -> None:
        """Keep the next ``n`` emails but answer 451 to each: the sender sends them again."""
        self._inbox.lose_reply_next = n

    @property
    def unknown_mailboxes(self) -> set[str]:
        """Addresses the SMTP server refuses at RCPT TO (550 5.1.1)."""
        return self._inbox.unknown

    @property
    def greylisted(self) -> dict[str, int]:
        """Address to how many more times the SMTP server refuses it at RCPT TO with 450."""
        return self._inbox.greylisted

    @property
    def slack_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/slack/T000/B000/secretpart"

    @property
    def pagerduty_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/v2/enqueue"

    def start(self) -> None:
        self._inbox.start()
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(timeout=30)

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop.close()
        self._inbox.stop()

    async def _serve(self) -> None:
        app = web.Application()
        app.router.add_post("/slack/{path:.*}", self._slack)
        app.router.add_post("/v2/enqueue", self._pagerduty)
        app.router.add_route("*", "/moved", self._moved)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.http_port).start()

    def _failing(self, route: str) -> bool:
        self.requests[route] += 1
        if self.fail_next[route] > 0:
            self.fail_next[route] -= 1
            return True
        return False

    async def _moved(self, request: web.Request) -> web.Response:
        self.moved += 1
        return web.Response(text="ok")

    def _canned(self, route: str) -> web.Response | None:
        if self.redirect_next[route] > 0:
            self.redirect_next[route] -= 1
            return web.Response(status=302, headers={"Location": "/moved"})
        if self.garble_next[route] > 0:
            self.garble_next[route] -= 1
            page = "Passerelle indisponible, réessayez".encode("cp1252")
            return web.Response(status=502, body=page, content_type="text/html")
        if self.throttle_next[route] <= 0:
            return None
        self.throttle_next[route] -= 1
        headers = {"Retry-After": str(self.retry_after)}
        return web.Response(status=429, text="rate_limited", headers=headers)

    async def _slack(self, request: web.Request) -> web.Response:
        if self._failing("slack"):
            return web.Response(status=500, text="internal_error")
        if (canned := self._canned("slack")) is not None:
            return canned
        body = await request.json()
        errors = slack_errors(body)
        if errors:
            return web.Response(status=400, text="invalid_blocks: " + "; ".join(errors))
        self.slack.append(body)
        return web.Response(text="ok")

    async def _pagerduty(self, request: web.Request) -> web.Response:
        if self._failing("pagerduty"):
            return web.json_response({"status": "error"}, status=500)
        if (canned := self._canned("pagerduty")) is not None:
            return canned
        body = await request.json()
        errors = pagerduty_errors(body)
        if errors:
            return web.json_response(
                {"status": "invalid event", "message": "Event object is invalid", "errors": errors},
                status=400,
            )
        self.pagerduty.append(body)
        self.arrived.set()
        if self.holding.is_set():
            await asyncio.get_running_loop().run_in_executor(None, self.released.wait, 120)
        return web.json_response(
            {"status": "success", "message": "Event processed", "dedup_key": body.get("dedup_key")},
            status=202,
        )

    def triggers(self) -> list[dict[str, Any]]:
        return [b for b in self.pagerduty if b["event_action"] == "trigger"]

    def resolves(self) -> list[dict[str, Any]]:
        return [b for b in self.pagerduty if b["event_action"] == "resolve"]
