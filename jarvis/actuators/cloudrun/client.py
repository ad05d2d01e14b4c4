"""The Cloud Run clients: building them from settings, and classifying their errors.

`jarvis.actuators.cloudrun.actuator` builds its `Clients` here (tests build them
too, aimed at the fake in tests/cloudrun) and passes every failure of a
blocking SDK call through `classify`, so the loop sees a temporary, a
terminal or a gone (NOT_FOUND) `ActuatorError`; `answer_lost` tells it whether a failed update may
still have reached Cloud Run.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from google.api_core import exceptions as gexc
from google.api_core import operation as lro
from google.auth.credentials import AnonymousCredentials
from google.auth.exceptions import DefaultCredentialsError
from google.cloud import run_v2
from requests import exceptions as rexc

from jarvis.actuators import transport
from jarvis.actuators.base import ActuatorError
from jarvis.actuators.cloudrun.state import first_paragraph
from jarvis.config.cloudrun import CloudRunSettings
from jarvis.model import ErrorKind

# By canonical status, not by exception class: the REST transport raises by HTTP
# status alone, and one HTTP status carries several canonical ones (a 409 is ABORTED
# for a stale etag but ALREADY_EXISTS for a revision name taken; a 400 is
# INVALID_ARGUMENT or FAILED_PRECONDITION).
_TERMINAL = frozenset(
    {
        "NOT_FOUND",
        "PERMISSION_DENIED",
        "UNAUTHENTICATED",
        "INVALID_ARGUMENT",
        "FAILED_PRECONDITION",
        "ALREADY_EXISTS",
        "OUT_OF_RANGE",
    }
)
_TEMPORARY = frozenset(
    {"UNAVAILABLE", "INTERNAL", "RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED", "ABORTED"}
)

# When the answer names no status: a 409 (Conflict) has no gRPC twin.
_HTTP_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


@dataclass(frozen=True, slots=True)
class Clients:
    """The two blocking SDK clients the actuator drives."""

    services: run_v2.ServicesClient
    revisions: run_v2.RevisionsClient

    def close(self) -> None:
        """Close both clients' HTTP sessions."""
        # The transports' close() is untyped in google-cloud-run.
        self.services.transport.close()  # type: ignore[no-untyped-call]
        self.revisions.transport.close()  # type: ignore[no-untyped-call]


def with_poll_timeout(operation: Any, clients: Clients, timeout: float) -> Any:
    """``operation`` (the api_core `Operation` an ``update_service`` answers) with every
    poll bounded by ``timeout`` seconds.

    The REST operations client sends its polls with no timeout at all (it passes
    ``timeout=None`` down), so a poll the network swallows would hold its worker
    thread until the operating system gave up on the connection.
    """
    operations = clients.services.transport.operations_client
    name = operation.operation.name
    return lro.Operation(  # type: ignore[no-untyped-call]  # api_core is untyped
        operation.operation,
        functools.partial(operations.get_operation, name, timeout=timeout),
        functools.partial(operations.cancel_operation, name, timeout=timeout),
        run_v2.Service,
        metadata_type=run_v2.Service,
    )


def build_clients(settings: CloudRunSettings) -> Clients:
    """REST clients on application-default credentials, or anonymous ones for a fake endpoint."""
    options: dict[str, Any] = {}
    if settings.api_endpoint is not None:
        options["api_endpoint"] = settings.api_endpoint
    credentials = (
        AnonymousCredentials()  # type: ignore[no-untyped-call]  # google-auth ships no types here
        if settings.credentials == "anonymous"
        else None
    )
    try:
        return Clients(
            services=run_v2.ServicesClient(
                transport="rest", credentials=credentials, client_options=options
            ),
            revisions=run_v2.RevisionsClient(
                transport="rest", credentials=credentials, client_options=options
            ),
        )
    except DefaultCredentialsError as exc:
        raise ActuatorError(
            f"cloudrun: no application-default credentials ({exc})", kind=ErrorKind.TERMINAL
        ) from exc


def status_name(exc: gexc.GoogleAPICallError) -> str:
    """Google's canonical status (NOT_FOUND, ALREADY_EXISTS, ...) of a client exception.

    The status the error body names comes first: the REST transport picks the
    exception class from the HTTP status alone, so a 409 ALREADY_EXISTS arrives as
    a plain Conflict and a 400 FAILED_PRECONDITION as a plain BadRequest.
    """
    named = _body_status(exc)
    if named:
        return named
    grpc_name = getattr(exc.grpc_status_code, "name", None)
    if grpc_name:
        return str(grpc_name)
    return _HTTP_STATUS.get(exc.code or 0, str(exc.code))


def _body_status(exc: gexc.GoogleAPICallError) -> str:
    """``error.status`` of a REST error's JSON body, or "" (an operation's error has none)."""
    read = getattr(exc.response, "json", None)
    if read is None:
        return ""
    try:
        error = read().get("error", {})
    except (ValueError, AttributeError):
        return ""
    status = error.get("status") if isinstance(error, dict) else None
    return status if isinstance(status, str) else ""


def classify(exc: BaseException) -> ActuatorError:
    """Map a client failure to an `ActuatorError` whose kind says whether to retry."""
    if isinstance(exc, ActuatorError):
        return exc
    if isinstance(exc, gexc.GoogleAPICallError):
        status = status_name(exc)
        if status == "NOT_FOUND":
            # An apply's calls address the service (get, list its revisions, update):
            # it was deleted since it was observed. Observe reads a missing service
            # by this code, and one revision that went by its own (`NotFound`).
            kind = ErrorKind.GONE
        elif status in _TERMINAL:
            kind = ErrorKind.TERMINAL
        elif status in _TEMPORARY:
            kind = ErrorKind.TEMPORARY
        else:
            kind = ErrorKind.TEMPORARY if (exc.code or 500) >= 500 else ErrorKind.TERMINAL
        message = first_paragraph(exc.message or "")
        return ActuatorError(f"cloudrun: {status}: {message}", kind=kind, code=status)
    # requests' ConnectionError and ReadTimeout are OSErrors: the network, not the request.
    if isinstance(exc, OSError):
        return ActuatorError(f"cloudrun: {type(exc).__name__}: {exc}", code="UNAVAILABLE")
    return ActuatorError(f"cloudrun: {type(exc).__name__}: {exc}", code="UNKNOWN")


def answer_lost(exc: BaseException) -> bool:
    """Whether a request that raised ``exc`` may have reached Cloud Run, only its answer
    lost: a read timeout, or a connection dropped mid-request. A connection never made
    (refused, a connect timeout, a TLS handshake that failed) sent nothing."""
    if isinstance(exc, rexc.ReadTimeout | rexc.ChunkedEncodingError):
        return True
    if not isinstance(exc, rexc.ConnectionError) or isinstance(exc, rexc.ConnectTimeout):
        return False
    cause = exc.args[0] if exc.args else None
    return isinstance(cause, BaseException) and transport.answer_lost(cause) is not None
