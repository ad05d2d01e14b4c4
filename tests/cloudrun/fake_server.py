"""A fake Cloud Run Admin API v2 on 127.0.0.1, for the real `google-cloud-run` client.

Tests start it through the fixtures in `tests/cloudrun/conftest.py` and point
``run_v2.ServicesClient(transport="rest", client_options={"api_endpoint": ...})``
at it. It speaks the REST wire format of the subset Jarvis uses:

- ``GET/PATCH /v2/projects/{p}/locations/{l}/services/{s}`` (PATCH honours
  ``updateMask`` and answers a long-running Operation),
- ``GET /v2/projects/{p}/locations/{l}/operations/{id}`` (``done`` after
  ``state.operation_polls`` polls, with a typed ``response`` or an ``error``),
- ``GET .../services/{s}/revisions`` (paged) and ``.../revisions/{r}``,
- errors as Google's JSON error body, which the client turns into NotFound & co.

Enums arrive as numbers (the client asks for ``$alt=json;enum-encoding=int``)
and are answered in the encoding asked for. `FakeCloudRun.fail_with`,
`FakeCloudRun.cut` and `FakeCloudRun.hang` switch every request (or the next few)
to an error status, to a connection closed unanswered, or to no answer;
`FakeCloudRun.deny` answers 403 on one service, as a per-service IAM condition does.
The reconciliation rules live in `fake_state`.

Run by hand (or from a CLI end-to-end test) to point ``jarvis plan``/``tick`` at it:
``python -m tests.cloudrun.fake_server --port 8085 --service api=IMAGE``; it prints
its endpoint on the first line and serves until interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import signal
import sys
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.cloudrun.fake_state import ApiError, CloudRunState

_LOC = r"/v2/(?P<loc>projects/[^/]+/locations/[^/]+)"
_SERVICE = re.compile(_LOC + r"/services/(?P<svc>[^/]+)$")
_REVISIONS = re.compile(_LOC + r"/services/(?P<svc>[^/]+)/revisions$")
_REVISION = re.compile(_LOC + r"/services/(?P<svc>[^/]+)/revisions/(?P<rev>[^/]+)$")
_OPERATION = re.compile(_LOC + r"/operations/(?P<op>[^/]+)$")

_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
# Enum fields of the messages the fake emits, by JSON key: name -> number.
_ENUMS: dict[str, dict[str, int]] = {
    "type": {
        "TRAFFIC_TARGET_ALLOCATION_TYPE_UNSPECIFIED": 0,
        "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST": 1,
        "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION": 2,
    },
    "state": {
        "STATE_UNSPECIFIED": 0,
        "CONDITION_PENDING": 1,
        "CONDITION_RECONCILING": 2,
        "CONDITION_FAILED": 3,
        "CONDITION_SUCCEEDED": 4,
    },
    "severity": {"SEVERITY_UNSPECIFIED": 0, "ERROR": 1, "WARNING": 2, "INFO": 3},
    "revisionReason": {"REVISION_REASON_UNDEFINED": 0, "HEALTH_CHECK_CONTAINER_ERROR": 6},
    "scalingMode": {"SCALING_MODE_UNSPECIFIED": 0, "AUTOMATIC": 1, "MANUAL": 2},
}
_ENUM_NAMES = {key: {v: k for k, v in names.items()} for key, names in _ENUMS.items()}
#: Longest a hung request waits for `FakeCloudRun.heal` or `close` before giving up.
HANG_LIMIT = 60.0


@dataclass(frozen=True)
class Request:
    """One request as the fake received it, for tests that check the wire."""

    method: str
    path: str
    query: dict[str, list[str]]
    body: Any


class FakeCloudRun:
    """The server: a `CloudRunState` behind a threaded HTTP listener on a free port."""

    def __init__(self, port: int = 0) -> None:
        self.state = CloudRunState()
        self.lock = threading.Lock()
        self.requests: list[Request] = []
        self._fault: int | None = None
        self._fault_scope = ""
        self._fault_method = ""
        self._fault_status = ""
        self._fault_message = ""
        self._fault_left: int | None = None
        self._cut_after = False
        self._denied: set[str] = set()
        self._hanging = False
        self._hang_scope = ""
        self._release = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _handler_for(self))
        # A short poll interval keeps `close` (and so every test's teardown) quick.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def fail_with(
        self,
        status: int,
        *,
        path_contains: str = "",
        method: str = "",
        status_name: str = "",
        message: str = "Internal error encountered.",
        times: int | None = None,
    ) -> None:
        """Answer requests (those whose path contains ``path_contains``, of ``method`` if
        given) with ``status`` and a Google error body, until `heal` (or for the next
        ``times`` such requests only).

        ``status_name`` overrides the body's canonical status, since Google maps several
        onto one HTTP status: a 409 is ABORTED for a stale etag but ALREADY_EXISTS for a
        revision name already taken ("409 Revision named '...' with different configuration
        already exists", googleapis/google-cloud-python#14259), a 400 is INVALID_ARGUMENT
        or FAILED_PRECONDITION (google/rpc/code.proto).
        """
        self._fault = status
        self._fault_scope = path_contains
        self._fault_method = method
        self._fault_status = status_name or _STATUS_NAMES.get(status, "UNKNOWN")
        self._fault_message = message
        self._fault_left = times

    def cut(
        self,
        *,
        path_contains: str = "",
        method: str = "",
        times: int | None = None,
        landed: bool = False,
    ) -> None:
        """Close the connection of such requests unanswered (a proxy or a network cutting
        it), until `heal` or for the next ``times`` of them; the client sees the server
        disconnect. ``landed``: each takes effect first, and only its answer is lost."""
        self.fail_with(0, path_contains=path_contains, method=method, times=times)
        self._cut_after = landed

    def deny(self, service: str) -> None:
        """Answer every request on ``service`` (and its revisions) with 403, as an IAM
        condition scoped to other services does, until `heal`."""
        self._denied.add(service)

    def hang(self, *, path_contains: str = "") -> None:
        """Accept every request (whose path contains ``path_contains``) and never answer
        it, until `heal` or `close`."""
        self._release.clear()
        self._hang_scope = path_contains
        self._hanging = True

    def heal(self) -> None:
        self._fault = None
        self._denied.clear()
        self._hanging = False
        self._release.set()

    def patches(self) -> list[Request]:
        return [r for r in self.requests if r.method == "PATCH"]

    def close(self) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __enter__(self) -> FakeCloudRun:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- request handling (called from the handler threads) ----------------------

    def handle(self, method: str, raw_path: str, body: Any) -> tuple[int, dict[str, Any]]:
        parts = urlsplit(raw_path)
        query = parse_qs(parts.query)
        with self.lock:
            self.requests.append(Request(method, parts.path, query, body))
        if self._hanging and self._hang_scope in parts.path:
            self._release.wait(HANG_LIMIT)
            return _error(ApiError(503, "UNAVAILABLE", "The service is currently unavailable."))
        fault = self._take_fault(method, parts.path)
        if fault is not None and not (fault[0] == 0 and self._cut_after):
            return fault
        if denied := self._denial(method, parts.path):
            return _error(denied)
        try:
            with self.lock:
                out = self._route(method, parts.path, query, _decode_enums(body))
        except ApiError as exc:
            return _error(exc)
        if fault is not None:
            return fault  # `cut(landed=True)`: done, and the answer lost
        numeric = any("enum-encoding=int" in v for v in query.get("$alt", []))
        return 200, (_encode_enums(out) if numeric else out)

    def _take_fault(self, method: str, path: str) -> tuple[int, dict[str, Any]] | None:
        """The fault this request meets, if any (status 0: cut), counting down ``times``."""
        with self.lock:
            if (
                self._fault is None
                or self._fault_scope not in path
                or self._fault_method not in ("", method)
            ):
                return None
            status = self._fault
            if self._fault_left is not None:
                self._fault_left -= 1
                if self._fault_left <= 0:
                    self._fault = None
        if status == 0:
            return 0, {}
        return _error(ApiError(status, self._fault_status, self._fault_message))

    def _denial(self, method: str, path: str) -> ApiError | None:
        """Google's answer to a call on a denied service: the permission and resource named."""
        for pattern, verb in (
            (_SERVICE, "services"),
            (_REVISIONS, "revisions"),
            (_REVISION, "revisions"),
        ):
            match = pattern.match(path)
            if match and match["svc"] in self._denied:
                action = (
                    "update" if method == "PATCH" else "list" if pattern is _REVISIONS else "get"
                )
                resource = path.removeprefix("/v2/")
                return ApiError(
                    403,
                    "PERMISSION_DENIED",
                    f"Permission 'run.{verb}.{action}' denied on resource '{resource}' "
                    "(or resource may not exist).",
                )
        return None

    def _route(
        self, method: str, path: str, query: dict[str, list[str]], body: Any
    ) -> dict[str, Any]:
        state = self.state
        if match := _SERVICE.match(path):
            name = f"{match['loc']}/services/{match['svc']}"
            if method == "GET":
                return state.get_service(name)
            if method == "PATCH":
                mask = [p for p in ",".join(query.get("updateMask", [])).split(",") if p]
                return state.update_service(name, body or {}, mask)
        elif (match := _REVISIONS.match(path)) and method == "GET":
            return state.list_revisions(
                f"{match['loc']}/services/{match['svc']}",
                int(query.get("pageSize", ["0"])[0]),
                query.get("pageToken", [""])[0],
            )
        elif (match := _REVISION.match(path)) and method == "GET":
            return state.get_revision(
                f"{match['loc']}/services/{match['svc']}/revisions/{match['rev']}"
            )
        elif (match := _OPERATION.match(path)) and method == "GET":
            return state.get_operation(f"{match['loc']}/operations/{match['op']}")
        raise ApiError(404, "NOT_FOUND", f"{method} {path} is not part of the fake's API.")


def _error(exc: ApiError) -> tuple[int, dict[str, Any]]:
    return exc.code, {"error": {"code": exc.code, "message": exc.message, "status": exc.status}}


def _encode_enums(value: Any, key: str = "") -> Any:
    if isinstance(value, dict):
        return {k: _encode_enums(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_encode_enums(v, key) for v in value]
    if isinstance(value, str) and value in _ENUMS.get(key, {}):
        return _ENUMS[key][value]
    return value


def _decode_enums(value: Any, key: str = "") -> Any:
    if isinstance(value, dict):
        return {k: _decode_enums(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode_enums(v, key) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and key in _ENUM_NAMES:
        return _ENUM_NAMES[key].get(value, value)
    return value


def _handler_for(fake: FakeCloudRun) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        # HTTP/1.0: one request per connection, so shutdown never waits on an
        # idle keep-alive connection held open by the client's session.
        protocol_version = "HTTP/1.0"

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                status, out = _error(ApiError(400, "INVALID_ARGUMENT", "Invalid JSON payload."))
            else:
                status, out = fake.handle(self.command, self.path, body)
            if status == 0:
                self.close_connection = True  # `FakeCloudRun.cut`: no status line, no body
                return
            payload = json.dumps(out).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=UTF-8")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except OSError:
                # The client gave up (its timeout fired while we hung): nothing to answer.
                return

        do_GET = _serve  # noqa: N815 - http.server dispatches on do_<METHOD>
        do_PATCH = _serve  # noqa: N815 - http.server dispatches on do_<METHOD>

        def log_message(self, *_args: Any) -> None:
            return  # keep pytest output clean

    return Handler


def main(argv: list[str] | None = None) -> None:
    """Serve a fake project with the given services until SIGINT or SIGTERM."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--project", default="demo-project")
    parser.add_argument("--region", default="us-central1")
    parser.add_argument("--service", action="append", default=[], metavar="NAME=IMAGE")
    args = parser.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with FakeCloudRun(args.port) as fake:
        for spec in args.service or ["api=us-docker.pkg.dev/demo/api:1.0"]:
            name, _, image = spec.partition("=")
            fake.state.add_service(args.project, args.region, name, image=image or "img:1")
        sys.stdout.write(fake.endpoint + "\n")
        sys.stdout.flush()
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()


if __name__ == "__main__":
    main()
