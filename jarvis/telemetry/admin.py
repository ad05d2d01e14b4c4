"""The admin API behind the HTTP server: the kill switch over ``/v1/killswitch``.

`jarvis.telemetry.http.HttpServer` routes admin requests here. What it needs
from the loop (reading and flipping the kill switch, recording each request as
an event) comes in through the `AdminBackend` protocol, which the composition
root implements over the safety layer and the event store. Every attempt,
refused ones included, is recorded and counted; the bearer token is compared
in constant time and never logged, recorded or echoed.
"""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass
from typing import Final, Protocol

import structlog
from aiohttp import web

from jarvis.model import KillSwitchState
from jarvis.telemetry.metrics import Metrics

__all__ = ["MAX_REASON_CHARS", "AdminApi", "AdminBackend", "KillSwitchRequest", "parse_request"]

MAX_REASON_CHARS: Final = 500
MAX_ACTOR_CHARS: Final = 200
DISABLED_MESSAGE: Final = "admin API disabled: set JARVIS_ADMIN_TOKEN"
_CHALLENGE: Final = {"WWW-Authenticate": 'Bearer realm="jarvis"'}
# Admin answers are state at one instant: never cached by a proxy or a browser.
_NO_STORE: Final = {"Cache-Control": "no-store"}
_REDACTED: Final = "[redacted]"

log = structlog.get_logger(__name__)


class AdminBackend(Protocol):
    """What the admin API needs from the rest of the daemon."""

    async def killswitch_status(self) -> KillSwitchState: ...

    async def set_killswitch(
        self, *, engaged: bool, actor: str, reason: str
    ) -> KillSwitchState: ...

    async def record_admin_request(
        self, *, method: str, path: str, remote: str, result: str, detail: str
    ) -> None: ...


class BadRequestError(ValueError):
    """A request body the admin API refuses; the message names the field."""


@dataclass(frozen=True, slots=True)
class KillSwitchRequest:
    """A validated ``POST /v1/killswitch`` body."""

    engaged: bool
    reason: str
    actor: str | None


def parse_request(raw: bytes) -> KillSwitchRequest:
    """Validate a kill-switch body; raise `BadRequestError` naming the bad field."""
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequestError(f"body: not valid JSON ({exc.__class__.__name__})") from None
    if not isinstance(body, dict):
        raise BadRequestError("body: expected a JSON object")
    unknown = sorted(set(body) - {"engaged", "reason", "actor"})
    if unknown:
        raise BadRequestError(f"body: unknown field(s) {', '.join(unknown)}")
    engaged = body.get("engaged")
    if not isinstance(engaged, bool):
        raise BadRequestError("engaged: required, must be true or false")
    reason = body.get("reason", "")
    if not isinstance(reason, str):
        raise BadRequestError("reason: must be a string")
    reason = reason.strip()
    if engaged and not reason:
        raise BadRequestError("reason: required when engaging the kill switch")
    if len(reason) > MAX_REASON_CHARS:
        raise BadRequestError(f"reason: at most {MAX_REASON_CHARS} characters")
    actor = body.get("actor")
    if actor is not None:
        if not isinstance(actor, str) or not actor.strip():
            raise BadRequestError("actor: must be a non-empty string")
        if len(actor) > MAX_ACTOR_CHARS:
            raise BadRequestError(f"actor: at most {MAX_ACTOR_CHARS} characters")
        actor = actor.strip()
    return KillSwitchRequest(engaged=engaged, reason=reason, actor=actor)


def state_json(state: KillSwitchState) -> dict[str, object]:
    return {
        "engaged": state.engaged,
        "actor": state.actor,
        "reason": state.reason,
        "changed_at": None if state.changed_at is None else state.changed_at.isoformat(),
    }


def _presented_token(request: web.Request) -> bytes | None:
    scheme, _, token = request.headers.get("Authorization", "").strip().partition(" ")
    # The auth scheme is case-insensitive (RFC 7235 section 2.1).
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip().encode()


@dataclass(frozen=True, slots=True)
class _Reply:
    status: int
    result: str
    detail: str
    body: dict[str, object]
    headers: dict[str, str] | None = None


async def _record(
    backend: AdminBackend, *, method: str, path: str, remote: str, result: str, detail: str
) -> None:
    try:
        await backend.record_admin_request(
            method=method, path=path, remote=remote, result=result, detail=detail
        )
    except Exception:
        # A lost audit row must not undo a kill-switch flip that already happened.
        log.exception("admin.record_failed", method=method, path=path)


class AdminApi:
    """Handles ``GET`` and ``POST /v1/killswitch``; one per `HttpServer`."""

    def __init__(self, *, backend: AdminBackend | None, token: str | None, metrics: Metrics):
        self._backend = backend
        # An empty token would let "Authorization: Bearer " through: treat it as unset.
        self._token = token.encode() if token else None
        self._metrics = metrics

    async def handle(self, request: web.Request) -> web.Response:
        reply = await self._decide(request)
        method = request.method if request.method in {"GET", "POST"} else "other"
        detail = self._redact(reply.detail)
        remote = request.remote or "unknown"
        self._metrics.admin_requests.labels(method=method, result=reply.result).inc()
        log.info(
            "admin.request",
            method=request.method,
            path=request.path,
            remote=remote,
            result=reply.result,
            status=reply.status,
            detail=detail,
        )
        if self._backend is not None:
            await _record(
                self._backend,
                method=request.method,
                path=request.path,
                remote=remote,
                result=reply.result,
                detail=detail,
            )
        headers = {**_NO_STORE, **(reply.headers or {})}
        return web.json_response(reply.body, status=reply.status, headers=headers)

    async def _decide(self, request: web.Request) -> _Reply:
        backend = self._authorize(request)
        if isinstance(backend, _Reply):
            return backend
        if request.method == "GET":
            return await self._status(backend)
        try:
            parsed = parse_request(await request.read())
        except web.HTTPRequestEntityTooLarge:
            message = "body: too large"
            return _Reply(413, "bad_request", message, {"error": message})
        except BadRequestError as exc:
            return _Reply(400, "bad_request", str(exc), {"error": str(exc)})
        actor = parsed.actor or f"api:{request.remote or 'unknown'}"
        return await self._set(backend, parsed, actor)

    def _authorize(self, request: web.Request) -> _Reply | AdminBackend:
        """The backend to act on, or the refusal to send before the body is read."""
        if request.method not in {"GET", "POST"}:
            message = f"method {request.method} not allowed; use GET or POST"
            return _Reply(405, "bad_request", message, {"error": message}, {"Allow": "GET, POST"})
        if self._token is None:
            return _Reply(403, "forbidden", DISABLED_MESSAGE, {"error": DISABLED_MESSAGE})
        backend = self._backend
        if backend is None:
            message = "admin API disabled: no kill-switch backend is configured"
            return _Reply(403, "forbidden", message, {"error": message})
        presented = _presented_token(request)
        if presented is None or not hmac.compare_digest(presented, self._token):
            message = "missing bearer token" if presented is None else "invalid bearer token"
            return _Reply(401, "unauthorized", message, {"error": message}, _CHALLENGE)
        return backend

    async def _status(self, backend: AdminBackend) -> _Reply:
        try:
            state = await backend.killswitch_status()
        except Exception as exc:  # noqa: BLE001 - any backend failure is a 503, never a traceback page
            return self._unavailable("reading the kill switch", exc)
        return _Reply(200, "ok", f"killswitch engaged={state.engaged}", state_json(state))

    async def _set(self, backend: AdminBackend, req: KillSwitchRequest, actor: str) -> _Reply:
        try:
            state = await backend.set_killswitch(
                engaged=req.engaged, actor=actor, reason=req.reason
            )
        except Exception as exc:  # noqa: BLE001 - any backend failure is a 503, never a traceback page
            return self._unavailable("setting the kill switch", exc)
        verb = "engaged" if req.engaged else "released"
        detail = f"killswitch {verb} by {actor}" + (f": {req.reason}" if req.reason else "")
        return _Reply(200, "ok", detail, state_json(state))

    def _unavailable(self, doing: str, exc: Exception) -> _Reply:
        # The exception's text may carry connection strings; the client gets its type only.
        log.error("admin.backend_failed", doing=doing, exc_info=exc)
        message = f"kill-switch backend unavailable while {doing} ({exc.__class__.__name__})"
        return _Reply(503, "error", message, {"error": message})

    def _redact(self, detail: str) -> str:
        # Our own messages never include the token; a client might paste it into a reason.
        if self._token is None:
            return detail
        return detail.replace(self._token.decode(), _REDACTED)
