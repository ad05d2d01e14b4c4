"""A wire-faithful fake of the Kubernetes API server, for the kubernetes actuator tests.

Started by the fixtures in `tests.kubernetes.conftest` on 127.0.0.1:0 in a
background thread, and driven only by the real ``kubernetes`` client pointed
at `FakeApiServer.url`. It speaks the real paths and verbs Jarvis uses:

- ``GET  /apis/apps/v1/namespaces/{ns}/deployments[?labelSelector=]`` and ``/{name}``
- ``PATCH /apis/apps/v1/namespaces/{ns}/deployments/{name}`` (strategic merge,
  merge and JSON patch content types) and ``GET|PATCH .../{name}/scale``
- ``GET  /apis/apps/v1/namespaces/{ns}/replicasets[?labelSelector=]``
- ``GET  /api/v1/namespaces/{ns}/pods[?labelSelector=]``
- ``GET|PATCH /apis/autoscaling/v2/namespaces/{ns}/horizontalpodautoscalers[/{name}]``
- ``POST /apis/coordination.k8s.io/v1/namespaces/{ns}/leases`` and ``GET|PUT .../{name}``
  (`tests.kubernetes.fake_leases`: the leader-election lock)

Errors are `Status` objects with the real codes and reasons (404 NotFound,
409 Conflict on a stale ``resourceVersion``, 422 Invalid, 415, 405, 401).
Every request is recorded as a `Call` (RBAC verb + resource) so a test can
hold the Role in deploy/kubernetes against what the actuator really did.
`fault` switches the server to answering 500, hanging, throttling (429
TooManyRequests with ``Retry-After: 1``, as API Priority and Fairness rejects a
request it has no seat for, before any handler runs), dropping the answer (the
request is served, a write lands, and the connection closes before the answer)
answering late (served, then 504 Timeout, as the API server's timeout filter
answers a request its handler is still finishing) or answering slowly (served, and
answered, after `slow_seconds`, as a loaded API server or a slow admission webhook
answers);
`fault_verbs` limits it to some RBAC verbs (``{"patch"}``: writes only) and
`fault_times` to that many requests, after which it clears. `forbidden`
answers 403 in the namespaces named, as RBAC does where no RoleBinding grants
Jarvis's Role.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal, cast
from urllib.parse import parse_qs, urlsplit

from tests.kubernetes.fake_cluster import KINDS, ApiError, FakeCluster
from tests.kubernetes.fake_leases import FakeLeases
from tests.kubernetes.fake_patch import JSON_PATCH, MERGE, STRATEGIC

Fault = Literal["error", "hang", "throttle", "drop", "late", "slow"] | None

_ROUTES = [
    re.compile(
        r"^/apis/(?P<group>apps)/v1/namespaces/(?P<ns>[^/]+)/(?P<res>deployments|replicasets)"
        r"(?:/(?P<name>[^/]+)(?:/(?P<sub>scale))?)?$"
    ),
    re.compile(r"^/api/v1/namespaces/(?P<ns>[^/]+)/(?P<res>pods)(?:/(?P<name>[^/]+))?$"),
    re.compile(
        r"^/apis/(?P<group>autoscaling)/v2/namespaces/(?P<ns>[^/]+)"
        r"/(?P<res>horizontalpodautoscalers)(?:/(?P<name>[^/]+))?$"
    ),
    re.compile(
        r"^/apis/(?P<group>coordination\.k8s\.io)/v1/namespaces/(?P<ns>[^/]+)"
        r"/(?P<res>leases)(?:/(?P<name>[^/]+))?$"
    ),
]
_PATCHABLE = {("deployments", None), ("deployments", "scale"), ("horizontalpodautoscalers", None)}


@dataclass(frozen=True, slots=True)
class Call:
    """One request, in RBAC terms: ``verb`` on ``group``/``resource`` (with subresource)."""

    verb: str
    group: str
    resource: str
    namespace: str
    name: str | None = None
    content_type: str | None = None

    @property
    def rule(self) -> tuple[str, str, str]:
        """(apiGroup, resource[/subresource], verb), as a Role rule grants it."""
        return (self.group, self.resource, self.verb)


class FakeApiServer:
    """The HTTP front of a `FakeCluster`. Use as a context manager, or start()/stop()."""

    def __init__(self, cluster: FakeCluster | None = None, *, token: str | None = None) -> None:
        self.cluster = cluster or FakeCluster()
        self.leases = FakeLeases(self.cluster)
        self.token = token
        self.calls: list[Call] = []
        self.fault: Fault = None
        self.fault_verbs: set[str] | None = None
        """The RBAC verbs `fault` applies to (None: every request)."""
        self.fault_times: int | None = None
        """How many more requests `fault` applies to (None: until reset)."""
        self.forbidden: set[str] = set()
        """Namespaces where Jarvis's service account has no RoleBinding: every call is 403."""
        self.slow_seconds = 5.0
        """How long a request meeting the ``slow`` fault waits before it is served."""
        self._release = threading.Event()
        self._calls_lock = threading.Lock()
        self._httpd = _HttpServer(("127.0.0.1", 0), Handler)
        self._httpd.fake = self
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeApiServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()  # let hanging handlers go
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()

    def __enter__(self) -> FakeApiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def record(self, call: Call) -> None:
        with self._calls_lock:
            self.calls.append(call)

    def writes(self) -> list[Call]:
        """The recorded calls that were not reads."""
        with self._calls_lock:
            return [c for c in self.calls if c.verb not in {"get", "list", "watch"}]

    def hang_until_stopped(self) -> None:
        self._release.wait()

    def pause(self, seconds: float) -> None:
        """Wait ``seconds``, or less if the server stops first."""
        self._release.wait(seconds)

    def fault_for(self, call: Call) -> Fault:
        """The fault this request meets, counting it against `fault_times`."""
        with self._calls_lock:
            if self.fault is None or (
                self.fault_verbs is not None and call.verb not in self.fault_verbs
            ):
                return None
            fault = self.fault
            if self.fault_times is not None:
                self.fault_times -= 1
                if self.fault_times <= 0:
                    self.fault, self.fault_times = None, None
            return fault


def _status(code: int, reason: str, message: str, *, name: str = "", kind: str = "") -> bytes:
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if name or kind:
        group = KINDS.get(kind, ("", "", ""))[2]
        body["details"] = {"name": name, "group": group, "kind": kind}
    return json.dumps(body).encode()


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeApiServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Silence the per-request stderr log."""

    def do_GET(self) -> None:
        self._serve("GET")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _send(self, code: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(code)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _refused(self, fault: Fault) -> bool:
        """Answer for the fault switch or a bad token; True when answered."""
        server = cast(_HttpServer, self.server).fake
        if fault == "hang":
            server.hang_until_stopped()
            self.close_connection = True
            return True
        if fault == "error":
            self._send(500, _status(500, "InternalError", "etcdserver: request timed out"))
            return True
        if fault == "throttle":
            message = "Too many requests, please try again later."
            self._send(429, _status(429, "TooManyRequests", message), {"Retry-After": "1"})
            return True
        wanted = f"Bearer {server.token}"
        if server.token is not None and self.headers.get("Authorization") != wanted:
            self._send(401, _status(401, "Unauthorized", "Unauthorized"))
            return True
        return False

    def _forbidden(self, call: Call) -> bool:
        """Answer 403 as RBAC does in a namespace without a RoleBinding; True when answered."""
        server = cast(_HttpServer, self.server).fake
        if call.namespace not in server.forbidden:
            return False
        group = call.group
        qualified = f"{call.resource}.{group}" if group else call.resource
        message = (
            f'{qualified} is forbidden: User "system:serviceaccount:jarvis:jarvis" cannot '
            f'{call.verb} resource "{call.resource}" in API group "{group}" in the namespace '
            f'"{call.namespace}"'
        )
        self._send(403, _status(403, "Forbidden", message, kind=call.resource))
        return True

    def _serve(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        match = next((m for r in _ROUTES if (m := r.match(parts.path))), None)
        if match is None:
            self._send(
                404,
                _status(404, "NotFound", "the server could not find the requested resource"),
            )
            return
        call = _call_for(method, match, self.headers.get("Content-Type"))
        server = cast(_HttpServer, self.server).fake
        server.record(call)
        fault = server.fault_for(call)
        if self._refused(fault) or self._forbidden(call):
            return
        if fault == "slow":
            server.pause(server.slow_seconds)  # then served and answered as usual
        try:
            request = _Request(method, match, parts.query, raw, call)
            if request.call.resource == "leases":
                code, payload = _dispatch_lease(server.leases, request)
            else:
                code, payload = _dispatch(server.cluster, request)
        except ApiError as exc:
            code = exc.code
            body = _status(exc.code, exc.reason, exc.message, name=exc.name, kind=exc.kind)
        else:
            body = json.dumps(payload).encode()
        if fault == "drop":
            # Served, and the answer lost on the way back: the connection just closes.
            self.close_connection = True
            return
        if fault == "late":
            message = "Timeout: request did not complete within requested timeout"
            self._send(504, _status(504, "Timeout", f"{message} - context deadline exceeded"))
            return
        self._send(code, body)


def _call_for(method: str, match: re.Match[str], content_type: str | None) -> Call:
    found = match.groupdict()
    resource = found["res"] + (f"/{found['sub']}" if found.get("sub") else "")
    verb = {
        "GET": "get" if found["name"] else "list",
        "PATCH": "patch",
        "PUT": "update",
        "POST": "create",
        "DELETE": "delete",
    }[method]
    return Call(
        verb=verb,
        group=found.get("group") or "",
        resource=resource,
        namespace=found["ns"],
        name=found["name"],
        content_type=content_type if method in {"PATCH", "PUT", "POST"} else None,
    )


@dataclass(frozen=True, slots=True)
class _Request:
    method: str
    match: re.Match[str]
    query: str
    raw: bytes
    call: Call


def _dispatch(cluster: FakeCluster, request: _Request) -> tuple[int, Any]:
    method, query, raw, call = request.method, request.query, request.raw, request.call
    found = request.match.groupdict()
    res, ns, name, sub = found["res"], found["ns"], found["name"], found.get("sub")
    if method == "GET" and name is None:
        selector = parse_qs(query).get("labelSelector", [None])[0]
        api_version, kind, _ = KINDS[res]
        items = cluster.list_objects(res, ns, selector)
        return 200, {
            "apiVersion": api_version,
            "kind": f"{kind}List",
            "metadata": {"resourceVersion": cluster.resource_version()},
            "items": items,
        }
    if method == "GET":
        return 200, cluster.get_scale(ns, name) if sub else cluster.get(res, ns, name)
    if method != "PATCH" or (res, sub) not in _PATCHABLE:
        raise ApiError(
            405, "MethodNotAllowed", f"the server does not allow {call.verb} on {call.resource}"
        )
    media = (call.content_type or "").split(";", 1)[0].strip()
    if media not in {STRATEGIC, MERGE, JSON_PATCH}:
        raise ApiError(
            HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            f"the body of the request was in an unknown format - accepted media types include: "
            f"{JSON_PATCH}, {MERGE}, {STRATEGIC}",
        )
    try:
        body = json.loads(raw or b"null")
    except json.JSONDecodeError as exc:
        raise ApiError(400, "BadRequest", f"invalid JSON: {exc}") from exc
    if sub:
        return 200, cluster.patch_scale(ns, name, body, media)
    return 200, cluster.patch(res, ns, name, body, media)


def _dispatch_lease(leases: FakeLeases, request: _Request) -> tuple[int, Any]:
    found = request.match.groupdict()
    ns, name = found["ns"], found["name"]
    try:
        body = json.loads(request.raw or b"null")
    except json.JSONDecodeError as exc:
        raise ApiError(400, "BadRequest", f"invalid JSON: {exc}") from exc
    match request.method, name:
        case "GET", str():
            return 200, leases.get(ns, name)
        case "POST", None:
            return 201, leases.create(ns, body)
        case "PUT", str():
            return 200, leases.replace(ns, name, body)
    raise ApiError(
        405, "MethodNotAllowed", f"the server does not allow {request.call.verb} on leases"
    )
