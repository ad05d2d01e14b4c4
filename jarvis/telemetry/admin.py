"""The admin API behind the HTTP server: the kill switch over ``/v1/killswitch``.

`jarvis.telemetry.http.HttpServer` routes admin requests here. What it needs
from the loop (reading and flipping the kill switch, recording each request as
an event) comes in through the `AdminBackend` protocol, which the composition
root implements over the safety layer and the event store. Every attempt,
refused ones included, is answered (never a 500 page with a traceback),
recorded and counted. The actor of a flip is the credential (`auth`), never a
field of the body; the read token may read and change nothing. Tokens are
compared in constant time and never logged, recorded or echoed: details pass
through the same redactor as the store's.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

import structlog
from aiohttp import hdrs, web

from jarvis.model import KillSwitchState, reason_too_long
from jarvis.telemetry.audit import Auditor, AuditSink
from jarvis.telemetry.auth import Credentials, Identity, bearer_token
from jarvis.telemetry.clients import Network
from jarvis.telemetry.metrics import Metrics
from jarvis.telemetry.outages import log_failure

__all__ = [
    "AdminApi",
    "AdminBackend",
    "BadRequestError",
    "KillSwitchRequest",
    "flip_request",
    "parse_request",
    "state_json",
]

ACTOR_MESSAGE: Final = "actor: not accepted; the actor is the credential (admin-token)"
DISABLED_MESSAGE: Final = "admin API disabled: set JARVIS_ADMIN_TOKEN"
_NOT_JSON: Final = "Content-Type: must be application/json (the body is a JSON object)"
_CHALLENGE: Final = {"WWW-Authenticate": 'Bearer realm="jarvis"'}
# Admin answers are state at one instant: never cached by a proxy or a browser.
_NO_STORE: Final = {"Cache-Control": "no-store"}

log = structlog.get_logger(__name__)


class AdminBackend(AuditSink, Protocol):
    """What the admin API needs from the rest of the daemon."""

    async def killswitch_status(self) -> KillSwitchState: ...

    async def set_killswitch(
        self, *, engaged: bool, actor: str, reason: str
    ) -> KillSwitchState: ...


class BadRequestError(ValueError):
    """A request body the admin API refuses; the message names the field."""


@dataclass(frozen=True, slots=True)
class KillSwitchRequest:
    """A validated ``POST /v1/killswitch`` body."""

    engaged: bool
    reason: str


def parse_request(raw: bytes) -> KillSwitchRequest:
    """Validate a kill-switch body; raise `BadRequestError` naming the bad field."""
    try:
        body = json.loads(raw)
    except ValueError as exc:
        # JSONDecodeError, UnicodeDecodeError, and the plain ValueError of an
        # integer literal past Python's 4,300-digit limit.
        raise BadRequestError(f"body: not valid JSON ({exc.__class__.__name__})") from None
    except RecursionError:
        # Deeply nested brackets exhaust the parser's stack: a bad body, not a crash.
        raise BadRequestError("body: nested too deeply") from None
    if not isinstance(body, dict):
        raise BadRequestError("body: expected a JSON object")
    if "actor" in body:
        raise BadRequestError(ACTOR_MESSAGE)
    unknown = sorted(set(body) - {"engaged", "reason"})
    if unknown:
        raise BadRequestError(f"body: unknown field(s) {', '.join(unknown)}")
    return flip_request(body.get("engaged"), body.get("reason", ""))


def flip_request(engaged: object, reason: object) -> KillSwitchRequest:
    """Validate a flip from any form (API body, page form); `BadRequestError` names the field."""
    if not isinstance(engaged, bool):
        raise BadRequestError("engaged: required, must be true or false")
    if not isinstance(reason, str):
        raise BadRequestError("reason: must be a string")
    reason = reason.strip()
    if engaged and not reason:
        raise BadRequestError("reason: required when engaging the kill switch")
    too_long = reason_too_long(reason)
    if too_long is not None:
        raise BadRequestError(too_long)
    return KillSwitchRequest(engaged=engaged, reason=reason)


def state_json(state: KillSwitchState) -> dict[str, object]:
    return {
        "engaged": state.engaged,
        "actor": state.actor,
        "reason": state.reason,
        "changed_at": None if state.changed_at is None else state.changed_at.isoformat(),
    }


@dataclass(frozen=True, slots=True)
class _Reply:
    status: int
    result: str
    detail: str
    body: dict[str, object]
    headers: dict[str, str] | None = None


def _declared_json(request: web.Request) -> bool:
    """Whether a POST declares its body JSON: ``application/json``, in any case and with any
    parameters (``; charset=utf-8``), or no Content-Type at all.

    A form or text is refused before the body is read: a flip sent as one was parsed as
    JSON all the same, so a client that meant a form got it applied. A body that
    declares no type is not one of those; scripts send JSON that way
    (``requests.post(url, data=...)``, ``http.client``), and it is read as JSON as before.
    """
    return hdrs.CONTENT_TYPE not in request.headers or request.content_type == "application/json"


async def _read_flip(request: web.Request) -> KillSwitchRequest | _Reply:
    """The flip a POST asks for, or the 4xx refusal of its body."""
    try:
        return parse_request(await request.read())
    except web.HTTPRequestEntityTooLarge:
        message = "body: too large"
        return _Reply(413, "bad_request", message, {"error": message})
    except web.RequestPayloadError:
        # The body did not decode: a Content-Encoding it is not (gzip that is not gzip).
        message = "body: unreadable (bad Content-Encoding)"
        return _Reply(400, "bad_request", message, {"error": message})
    except BadRequestError as exc:
        return _Reply(400, "bad_request", str(exc), {"error": str(exc)})


class AdminApi:
    """Handles ``GET`` and ``POST /v1/killswitch``; one per `HttpServer`."""

    def __init__(
        self,
        *,
        backend: AdminBackend | None,
        credentials: Credentials,
        metrics: Metrics,
        redact: Callable[[str], str],
        trusted_proxies: Sequence[Network] = (),
    ) -> None:
        self._backend = backend
        self._credentials = credentials
        self._audit = Auditor(
            sink=backend, metrics=metrics, redact=redact, trusted_proxies=trusted_proxies
        )

    async def handle(self, request: web.Request) -> web.Response:
        try:
            reply = await self._decide(request)
        except Exception as exc:
            # Whatever went wrong, the request is still answered and audited.
            log.exception("admin.handler_failed", path=request.path)
            message = f"internal error ({exc.__class__.__name__})"
            reply = _Reply(500, "error", message, {"error": message})
        await self._audit.record(
            request, result=reply.result, status=reply.status, detail=reply.detail
        )
        headers = {**_NO_STORE, **(reply.headers or {})}
        return web.json_response(reply.body, status=reply.status, headers=headers)

    async def _decide(self, request: web.Request) -> _Reply:
        authorized = self._authorize(request)
        if isinstance(authorized, _Reply):
            return authorized
        backend, identity = authorized
        if request.method == "GET":
            return await self._status(backend)
        if not identity.may_change:
            message = "the read token may not change the kill switch; use the admin token"
            return _Reply(403, "forbidden", message, {"error": message})
        if not _declared_json(request):
            return _Reply(415, "bad_request", _NOT_JSON, {"error": _NOT_JSON})
        parsed = await _read_flip(request)
        if isinstance(parsed, _Reply):
            return parsed
        return await self._set(backend, parsed, identity.actor)

    def _authorize(self, request: web.Request) -> _Reply | tuple[AdminBackend, Identity]:
        """The backend and caller to act for, or the refusal to send before the body is read."""
        if request.method not in {"GET", "POST"}:
            message = f"method {request.method} not allowed; use GET or POST"
            return _Reply(405, "bad_request", message, {"error": message}, {"Allow": "GET, POST"})
        if not self._credentials.admin_enabled:
            return _Reply(403, "forbidden", DISABLED_MESSAGE, {"error": DISABLED_MESSAGE})
        backend = self._backend
        if backend is None:
            message = "admin API disabled: no kill-switch backend is configured"
            return _Reply(403, "forbidden", message, {"error": message})
        presented = bearer_token(request)
        identity = self._credentials.identify(presented)
        if identity is None:
            message = "missing bearer token" if presented is None else "invalid bearer token"
            return _Reply(401, "unauthorized", message, {"error": message}, _CHALLENGE)
        return backend, identity

    async def _status(self, backend: AdminBackend) -> _Reply:
        try:
            state = await backend.killswitch_status()
        except Exception as exc:  # noqa: BLE001 - any backend failure is a 503, never a traceback page
            return _unavailable(backend, "reading the kill switch", exc)
        return _Reply(200, "ok", f"killswitch engaged={state.engaged}", state_json(state))

    async def _set(self, backend: AdminBackend, req: KillSwitchRequest, actor: str) -> _Reply:
        try:
            state = await backend.set_killswitch(
                engaged=req.engaged, actor=actor, reason=req.reason
            )
        except Exception as exc:  # noqa: BLE001 - any backend failure is a 503, never a traceback page
            return _unavailable(backend, "setting the kill switch", exc)
        verb = "engaged" if req.engaged else "released"
        detail = f"killswitch {verb} by {actor}" + (f": {req.reason}" if req.reason else "")
        return _Reply(200, "ok", detail, state_json(state))


def _unavailable(backend: AdminBackend, doing: str, exc: Exception) -> _Reply:
    """A 503 for a kill switch that could not be read or set; the log says why: an outage
    in the backend's one line (naming the server, never its password), anything else
    with its traceback. The client gets the exception's type only."""
    log_failure(backend.outage, exc, "admin.backend_failed", doing=doing)
    message = f"kill-switch backend unavailable while {doing} ({exc.__class__.__name__})"
    return _Reply(503, "error", message, {"error": message})
