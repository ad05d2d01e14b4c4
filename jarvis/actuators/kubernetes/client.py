"""Building the Kubernetes `ApiClient` from settings, reading lists, classifying errors.

Used by the Kubernetes actuator's modules only: `build_api_client` when the
composition root calls `KubernetesActuator.from_settings` without a client;
`list_items` for every list call, so that one object the client refuses does
not cost the others; and `to_actuator_error` at the boundary where an SDK
exception becomes an `ActuatorError` (temporary or terminal, with the API's
reason as the code; gone for a 404 naming a Deployment: the target was deleted).

Which failures are the provider's: an HTTP 429/5xx, a timeout, a connection
that cannot be made or breaks (urllib3, TLS and socket errors), an answer that
is not JSON at all. A write whose answer was lost after it was sent (a read
timeout, a connection closed mid-request, a 504: `answer_lost`) may have landed; the
changes raise `AnswerLostError` for it, which apply records as timed out
(unknown). Which are one object's: the client refusing what the API server said
about it (a pydantic ``ValidationError``: a string where an int
belongs, a malformed timestamp, a required field missing). Those are code
``Unreadable`` and terminal: retrying reads the same object again.
"""

from __future__ import annotations

import http.client
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import pydantic
import urllib3
from kubernetes import client, config

from jarvis.actuators import transport
from jarvis.actuators.base import ActuatorError
from jarvis.config.kubernetes import KubernetesSettings
from jarvis.model import ErrorKind

M = TypeVar("M")

#: Codes that retrying the same request cannot fix.
TERMINAL_STATUSES = frozenset({400, 401, 403, 404, 405, 410, 415, 422})
TIMEOUT = "Timeout"
GATEWAY_TIMEOUT = 504
CONNECTION = "ConnectionError"
UNREADABLE = "Unreadable"
"""The client refused one object the API server sent: that object's problem."""
BAD_RESPONSE = "BadResponse"
_DETAIL_CHARS = 300
THROTTLED_ATTEMPTS = 3
"""Requests a throttled call may make, the first included (`throttled_wait`)."""
MAX_THROTTLE_WAIT = 2.0
"""The longest Retry-After honoured (API Priority and Fairness answers 1 s), in seconds."""


def build_api_client(settings: KubernetesSettings) -> client.ApiClient:
    """An ApiClient for the configured cluster; ActuatorError(TERMINAL) if unusable."""
    cfg = client.Configuration()
    try:
        match settings.auth_mode:
            case "token":
                token = settings.token.get_secret_value() if settings.token else ""
                cfg.host = settings.host or ""
                cfg.api_key = {"authorization": token}
                cfg.api_key_prefix = {"authorization": "Bearer"}
                cfg.verify_ssl = settings.verify_ssl
                if settings.ca_cert is not None:
                    cfg.ssl_ca_cert = str(settings.ca_cert)
            case "in_cluster":
                config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]  # untyped in the SDK
            case "kubeconfig":
                config.load_kube_config(  # type: ignore[no-untyped-call]  # untyped in the SDK
                    config_file=None if settings.kubeconfig is None else str(settings.kubeconfig),
                    context=settings.context,
                    client_configuration=cfg,
                    persist_config=False,
                )
    except (config.ConfigException, OSError) as exc:
        raise ActuatorError(
            f"cannot configure the Kubernetes client ({settings.auth_mode}): {exc}",
            kind=ErrorKind.TERMINAL,
            code="ConfigError",
        ) from exc
    # One retry on a dropped connection, none on a read timeout: a hung API
    # server costs at most two request timeouts, never urllib3's default four.
    # Not honouring Retry-After here: urllib3 would turn a 429 (or 503) that
    # carries one into a MaxRetryError, losing the API's Status; the actuator
    # waits out a 429's Retry-After itself (`throttled_wait`), on its clock.
    cfg.retries = urllib3.Retry(
        total=1, read=0, redirect=0, status=0, respect_retry_after_header=False
    )
    return client.ApiClient(cfg)


def _status(exc: client.ApiException) -> dict[str, Any] | None:
    """The `Status` object the API server answers errors with, or None."""
    try:
        body = json.loads(exc.body or "")
    except (TypeError, ValueError):
        return None
    return body if isinstance(body, dict) and body.get("kind") == "Status" else None


def _status_message(exc: client.ApiException) -> tuple[str, str | None]:
    # The API server answers errors with a Status object; fall back to the reason line.
    body = _status(exc)
    if body is not None:
        return str(body.get("message") or exc.reason), body.get("reason") or None
    return str(exc.reason or "no reason given"), None


def _deployment_gone(exc: client.ApiException) -> bool:
    """A 404 NotFound whose details name a Deployment: the target was deleted.

    Only the Deployment: a 404 for its HPA leaves the target there, and one with
    no details (a path the API server does not serve) is a misconfiguration.
    """
    body = _status(exc) if exc.status == 404 else None
    details = body.get("details") if body is not None else None
    return isinstance(details, dict) and details.get("kind") == "deployments"


class AnswerLostError(ActuatorError):
    """A write was sent and no answer said what became of it: it may have been made, or not."""

    def __init__(self, what: str, why: str) -> None:
        message = f"{what}: sent, but {why}; the outcome is unknown"
        super().__init__(message, code=TIMEOUT, unanswered=True)


def answer_lost(exc: BaseException) -> str | None:
    """Why a write that raised ``exc`` may have been made, or None when it was not.

    Its answer was lost (a read timeout, a connection dropped mid-request), or was a
    504: the API server's own deadline passed (or a proxy's in front of it) while the
    handler may still be writing. A connection never made (refused, a connect
    timeout, a TLS handshake that failed) sent nothing; any other answer is final.
    """
    if isinstance(exc, client.ApiException):
        if exc.status != GATEWAY_TIMEOUT:
            return None
        message, _ = _status_message(exc)
        return f"answered HTTP 504 {message}"
    cause = transport.answer_lost(exc)
    return None if cause is None else f"its answer was lost ({type(cause).__name__}: {cause})"


class BadResponseError(Exception):
    """A list answer that is not a list at all (not JSON, no ``items``): the server's fault."""


@dataclass(frozen=True, slots=True)
class Unreadable:
    """One item of a list that the client refused, named by what its raw JSON says.

    ``raw`` is the item when it is a JSON object, else empty: it names nothing.
    """

    namespace: str
    name: str
    raw: Mapping[str, Any]
    error: str

    def message(self, kind: str) -> str:
        return f"{kind} {self.namespace}/{self.name} cannot be read: {self.error}"


def list_items(
    call: Callable[..., Any],
    parse: Callable[[Any], M | None],
    keep: Callable[[Mapping[str, Any]], bool] = lambda _: True,
) -> tuple[list[M], list[Unreadable]]:
    """The items of a list ``call`` that ``keep`` wants, each parsed alone by ``parse``.

    The SDK parses a whole list at once, so one item it refuses fails the list;
    here such an item is set aside as `Unreadable` and the others are returned.
    """
    response = call(_preload_content=False)
    try:
        items = json.loads(response.data).get("items")
    except (ValueError, AttributeError) as exc:
        raise BadResponseError(f"the answer is not a JSON object: {exc}") from exc
    if not isinstance(items, list):
        raise BadResponseError(f"the answer has no list of items ({type(items).__name__})")
    found: list[M] = []
    unreadable: list[Unreadable] = []
    for raw in items:
        if isinstance(raw, dict) and not keep(raw):
            continue
        try:
            parsed = parse(raw)
        except Exception as exc:  # noqa: BLE001 - parsing one item is local: whatever fails, fails for it alone
            obj = raw if isinstance(raw, dict) else {}
            meta = obj.get("metadata")
            unreadable.append(
                Unreadable(_name(meta, "namespace"), _name(meta, "name"), obj, describe(exc))
            )
            continue
        if parsed is not None:
            found.append(parsed)
    return found, unreadable


def readable(found: tuple[list[M], list[Unreadable]], kind: str) -> list[M]:
    """The items of a `list_items` answer; `ActuatorError` (``Unreadable``) if one was refused."""
    items, unreadable = found
    if unreadable:
        raise ActuatorError(unreadable[0].message(kind), kind=ErrorKind.TERMINAL, code=UNREADABLE)
    return items


def _name(meta: Any, key: str) -> str:
    value = meta.get(key) if isinstance(meta, dict) else None
    return value[:253] if isinstance(value, str) else ""


def describe(exc: BaseException) -> str:
    """One line saying what the client refused, without echoing the refused value."""
    if isinstance(exc, pydantic.ValidationError):
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
            for error in exc.errors()[:3]
        )
        text = f"{exc.title}: {problems}"
    else:
        text = f"{type(exc).__name__}: {exc}"
    text = " ".join(text.split())
    return text if len(text) <= _DETAIL_CHARS else text[: _DETAIL_CHARS - 3] + "..."


def _transport_error(exc: BaseException, what: str) -> ActuatorError | None:
    """A timeout or a connection that could not be made or broke (TLS, socket, HTTP framing)."""
    cause = exc.reason if isinstance(exc, urllib3.exceptions.MaxRetryError) else exc
    # urllib3 2 derives a refused connection from ConnectTimeoutError; it is not a timeout.
    unreachable = isinstance(cause, urllib3.exceptions.NewConnectionError)
    if not unreachable and isinstance(cause, urllib3.exceptions.TimeoutError | TimeoutError):
        return ActuatorError(f"{what}: timed out ({cause})", code=TIMEOUT)
    if isinstance(cause, urllib3.exceptions.HTTPError | OSError | http.client.HTTPException):
        return ActuatorError(f"{what}: {type(cause).__name__}: {cause}", code=CONNECTION)
    return None


def throttled_wait(exc: BaseException) -> float | None:
    """Seconds to wait before sending a throttled request again; None when ``exc`` is no
    throttle: a 429 with a Retry-After in seconds, at most `MAX_THROTTLE_WAIT`.

    API Priority and Fairness (and the max-in-flight filter) answer 429 before any
    handler runs, so nothing was done and even a PATCH may be sent again, as
    client-go does. A 5xx is not: a write may have landed before it.
    """
    if not isinstance(exc, client.ApiException) or exc.status != 429:
        return None
    try:
        seconds = float((exc.headers or {}).get("Retry-After") or "")
    except ValueError:
        return None
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return min(seconds, MAX_THROTTLE_WAIT)


def to_actuator_error(exc: BaseException, what: str) -> ActuatorError:
    """Classify an exception raised by the kubernetes client during ``what``."""
    if isinstance(exc, ActuatorError):
        return exc
    if isinstance(exc, client.ApiException):
        status = int(exc.status or 0)
        message, reason = _status_message(exc)
        kind = ErrorKind.TERMINAL if status in TERMINAL_STATUSES else ErrorKind.TEMPORARY
        if _deployment_gone(exc):
            kind = ErrorKind.GONE
        after = (exc.headers or {}).get("Retry-After")
        wait = f" (retry after {after[:20]}s)" if after else ""
        return ActuatorError(
            f"{what}: HTTP {status} {message}{wait}", kind=kind, code=reason or f"HTTP{status}"
        )
    if isinstance(exc, BadResponseError):
        return ActuatorError(f"{what}: {exc}", code=BAD_RESPONSE)
    transport = _transport_error(exc, what)
    if transport is not None:
        return transport
    if isinstance(exc, ValueError | TypeError | KeyError | AttributeError | IndexError):
        # What the client's models raise when they refuse the object just read or written.
        return ActuatorError(
            f"{what}: the answer cannot be read: {describe(exc)}",
            kind=ErrorKind.TERMINAL,
            code=UNREADABLE,
        )
    return ActuatorError(
        f"{what}: unexpected {describe(exc)}", kind=ErrorKind.TERMINAL, code="Unexpected"
    )


def to_json(api: client.ApiClient, obj: object) -> Any:
    """An SDK model as the JSON the API server speaks (camelCase keys, no nulls)."""
    return api.sanitize_for_serialization(obj)  # type: ignore[no-untyped-call]  # untyped in the SDK
