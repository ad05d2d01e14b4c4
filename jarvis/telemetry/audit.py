"""One audit trail for every request that asks to see or change something.

The admin API (`admin`) and the status page (`web.page`) both answer through
an `Auditor`: each attempt, refused and failed ones included, is counted in
``jarvis_admin_requests_total``, logged, and recorded as an ``admin.request``
event through the injected sink, with its detail passed through the
redactor first (a token pasted into a reason is not echoed anywhere).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import structlog
from aiohttp import web

from jarvis.telemetry.clients import Network, client_address, forwarded_https
from jarvis.telemetry.metrics import Metrics

__all__ = ["AuditSink", "Auditor"]

log = structlog.get_logger(__name__)


class AuditSink(Protocol):
    """Where an audited request is recorded (the event store, through the loop)."""

    async def record_admin_request(
        self, *, method: str, path: str, remote: str, result: str, detail: str
    ) -> None: ...


class Auditor:
    """Counts, logs and records one request's outcome."""

    def __init__(
        self,
        *,
        sink: AuditSink | None,
        metrics: Metrics,
        redact: Callable[[str], str],
        trusted_proxies: Sequence[Network] = (),
    ) -> None:
        self._sink = sink
        self._metrics = metrics
        self.redact = redact
        self._trusted = tuple(trusted_proxies)

    def client(self, request: web.Request) -> str:
        """Who sent ``request``: its peer, or behind a trusted proxy the client it names."""
        forwarded = request.headers.getall("X-Forwarded-For", [])
        return client_address(request.remote, forwarded, self._trusted)

    def secure(self, request: web.Request) -> bool:
        """Whether ``request`` came over TLS: to this server, or to a trusted proxy in front."""
        proto = request.headers.getall("X-Forwarded-Proto", [])
        return request.secure or forwarded_https(request.remote, proto, self._trusted)

    async def record(self, request: web.Request, *, result: str, status: int, detail: str) -> None:
        method = request.method if request.method in {"GET", "POST"} else "other"
        detail = self.redact(detail)
        remote = self.client(request)
        self._metrics.admin_requests.labels(method=method, result=result).inc()
        log.info(
            "admin.request",
            method=request.method,
            path=request.path,
            remote=remote,
            result=result,
            status=status,
            detail=detail,
        )
        if self._sink is None:
            return
        try:
            await self._sink.record_admin_request(
                method=request.method,
                path=request.path,
                remote=remote,
                result=result,
                detail=detail,
            )
        except Exception:
            # A lost audit row must not undo a change that already happened.
            log.exception("admin.record_failed", method=request.method, path=request.path)
