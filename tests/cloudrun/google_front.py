"""Google's side of a Cloud Monitoring PromQL query on loopback: token endpoint and API front.

`GoogleFront` plays two Google servers in one thread-served HTTP server:

- ``POST /token``: the OAuth 2.0 token endpoint a service-account key's
  ``token_uri`` names. google-auth posts a JWT-bearer grant (RFC 7523); the
  front checks the JWT's RS256 signature against the key it issued, its
  audience and its scope, and answers an access token, as
  https://oauth2.googleapis.com/token does.
- ``POST /v1/projects/PROJECT/location/global/prometheus/api/v1/query``: Cloud
  Monitoring's PromQL endpoint. A request without a token it issued (or after
  `revoke`) gets Google's 401 ``UNAUTHENTICATED`` error body; with `deny`, 403
  ``PERMISSION_DENIED``; otherwise the form is forwarded to a real Prometheus
  and its answer returned unchanged.

`write_key` writes a service-account key file (a fresh RSA key) whose
``token_uri`` is this front, for ``GOOGLE_APPLICATION_CREDENTIALS``.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

SCOPE = "https://www.googleapis.com/auth/monitoring.read"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
#: google-auth signs every grant for Google's token endpoint, whatever ``token_uri`` says.
AUDIENCE = "https://oauth2.googleapis.com/token"


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class GoogleFront:
    """The token endpoint and the PromQL front of one project, forwarding to ``prometheus``."""

    def __init__(self, project: str, prometheus: str) -> None:
        self.project = project
        self.prometheus = prometheus.rstrip("/")
        self.keys: dict[str, RSAPublicKey] = {}
        self.tokens: set[str] = set()
        self.token_requests = 0
        self.denied = False
        self._lock = threading.Lock()
        front = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                status, payload = front.handle(self.path, self.headers.get("Authorization"), body)
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=UTF-8")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib's name
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self.monitoring_url = f"{self.url}/v1/projects/{project}/location/global/prometheus"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def write_key(
        self, path: Path, email: str = "jarvis@demo-project.iam.gserviceaccount.com"
    ) -> Path:
        """A service-account key file whose token endpoint is this front."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        self.keys[email] = key.public_key()
        info = {
            "type": "service_account",
            "project_id": self.project,
            "private_key_id": secrets.token_hex(8),
            "private_key": pem,
            "client_email": email,
            "client_id": "1234567890",
            "token_uri": f"{self.url}/token",
        }
        path.write_text(json.dumps(info), encoding="utf-8")
        return path

    def revoke(self) -> None:
        """Every token issued so far is refused from now on (as after a key is disabled)."""
        with self._lock:
            self.tokens.clear()

    def handle(self, path: str, authorization: str | None, body: bytes) -> tuple[int, bytes]:
        if path == "/token":
            return self._token(body)
        if path != f"/v1/projects/{self.project}/location/global/prometheus/api/v1/query":
            return _error(404, "NOT_FOUND", f"no such path: {path}")
        scheme, _, token = (authorization or "").partition(" ")
        with self._lock:
            known = scheme == "Bearer" and token in self.tokens
        if not known:
            return _error(
                401,
                "UNAUTHENTICATED",
                "Request had invalid authentication credentials. Expected OAuth 2 access "
                "token, login cookie or other valid authentication credential.",
            )
        if self.denied:
            return _error(
                403,
                "PERMISSION_DENIED",
                "Permission monitoring.timeSeries.list denied (or the resource may not exist).",
            )
        request = urllib.request.Request(f"{self.prometheus}/api/v1/query", data=body)  # noqa: S310 - loopback
        request.add_header("Content-Type", "application/x-www-form-urlencoded")
        with urllib.request.urlopen(request, timeout=30) as reply:  # noqa: S310 - loopback
            return reply.status, reply.read()

    def _token(self, body: bytes) -> tuple[int, bytes]:
        self.token_requests += 1
        form = dict(urllib.parse.parse_qsl(body.decode()))
        if form.get("grant_type") != JWT_BEARER or "assertion" not in form:
            return 400, json.dumps({"error": "unsupported_grant_type"}).encode()
        header, claims, signature = form["assertion"].split(".")
        payload = json.loads(_unb64(claims))
        key = self.keys.get(payload.get("iss", ""))
        try:
            if key is None:  # a deleted key: the same answer as a bad signature
                return _invalid_grant()
            key.verify(
                _unb64(signature),
                f"{header}.{claims}".encode(),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        except InvalidSignature:
            return _invalid_grant()
        if payload.get("aud") != AUDIENCE or SCOPE not in payload.get("scope", ""):
            return 400, json.dumps(
                {"error": "invalid_scope", "error_description": "Invalid audience or scope."}
            ).encode()
        token = "ya29." + secrets.token_urlsafe(24)
        with self._lock:
            self.tokens.add(token)
        return 200, json.dumps(
            {"access_token": token, "expires_in": 3599, "token_type": "Bearer"}
        ).encode()

    def __enter__(self) -> GoogleFront:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


def _invalid_grant() -> tuple[int, bytes]:
    body = {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
    return 400, json.dumps(body).encode()


def _error(code: int, status: str, message: str) -> tuple[int, bytes]:
    """Google's JSON error body (google.rpc.Status as REST renders it)."""
    return code, json.dumps(
        {"error": {"code": code, "message": message, "status": status}}
    ).encode()
