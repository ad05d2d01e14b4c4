"""One audit trail for every request that asks to see or change something.

The admin API (`admin`) and the status page (`web.page`) both answer through
an `Auditor`: each attempt, refused and failed ones included, is counted in
``jarvis_admin_requests_total``, logged, and recorded as an ``admin.request``
event through the injected sink, with its detail passed through the
redactor first (a token pasted into a reason is not echoed anywhere).

Refused requests need no token, so anyone who reaches the port could grow the
event log at request rate. At most `REFUSED_RECORDED_PER_MINUTE` of them are
recorded and logged one by one in a minute; the first one past that is
recorded as ``suppressed``, saying the rest of the minute's are only counted
(the metric counts every request). Requests that succeed are always recorded.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Final, Protocol

import structlog
from aiohttp import web

from jarvis.telemetry.clients import Network, client_address, forwarded_https
from jarvis.telemetry.metrics import Metrics
from jarvis.telemetry.outages import Outages, log_failure

__all__ = ["AuditSink", "Auditor"]

log = structlog.get_logger(__name__)

REFUSED_RECORDED_PER_MINUTE: Final = 60
"""Refused requests recorded (and logged) one by one in a minute; the rest are counted."""


class AuditSink(Outages, Protocol):
    """Where an audited request is recorded (the event store, through the loop); its
    `outage` says a record lost to the store away in one line."""

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
        self._since: float | None = None
        self._refused = 0
        """Refused requests seen in the minute from `_since` (`time.monotonic`), the first's."""

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
        self._metrics.admin_requests.labels(method=method, result=result).inc()
        if result != "ok" and not self._one_by_one():
            if self._refused == REFUSED_RECORDED_PER_MINUTE + 1:
                await self._tell_suppressed(request)
            return
        detail = self.redact(detail)
        remote = self.client(request)
        log.info(
            "admin.request",
            method=request.method,
            path=request.path,
            remote=remote,
            result=result,
            status=status,
            detail=detail,
        )
        await self._sink_record(request, remote=remote, result=result, detail=detail)

    def _one_by_one(self) -> bool:
        """Count a refused request; whether it is within this minute's to record (a minute
        from the first refused one, so a burst is never split by a clock's minute)."""
        now = time.monotonic()
        if self._since is None or now - self._since >= 60:
            self._since, self._refused = now, 0
        self._refused += 1
        return self._refused <= REFUSED_RECORDED_PER_MINUTE

    async def _tell_suppressed(self, request: web.Request) -> None:
        detail = (
            f"more than {REFUSED_RECORDED_PER_MINUTE} refused requests this minute: the rest"
            " are counted in jarvis_admin_requests_total, not recorded one by one"
        )
        remote = self.client(request)
        log.warning("admin.requests_suppressed", remote=remote, detail=detail)
        await self._sink_record(request, remote=remote, result="suppressed", detail=detail)

    async def _sink_record(
        self, request: web.Request, *, remote: str, result: str, detail: str
    ) -> None:
        """Record the request as an ``admin.request`` event, if there is a sink."""
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
        except Exception as exc:  # noqa: BLE001 - logged by log_failure, traceback for a bug
            # A lost audit row must not undo a change that already happened.
            log_failure(
                self._sink.outage,
                exc,
                "admin.record_failed",
                method=request.method,
                path=request.path,
            )
