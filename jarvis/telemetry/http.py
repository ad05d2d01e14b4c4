"""The daemon's HTTP server: metrics, probes, the admin API and the status page.

The composition root builds one `HttpServer` and starts it beside the
reconcile loop (same asyncio event loop, no thread). What the server reports
comes in as callables: ``healthy()`` (the loop decides: a tick finished
recently), ``ready()`` (the store and the kill-switch backend answer) and an
`AdminBackend` for the kill switch, for the status page at ``/``
(`jarvis.telemetry.web`) a `PageBackend` and the month's budget, for
``POST /webhooks/stripe`` a `WebhookBackend` (`jarvis.loop.billing`): this
module only bounds the body and hands it over with its ``Stripe-Signature``,
answering 503 when the backend says its failure is an outage
(`jarvis.telemetry.outages`); and with customer email, ``/unsubscribe``
(`jarvis.telemetry.unsubscribe`). It runs in the loop's event loop and imports
nothing from the loop, the app or the CLI.
Every response is JSON except the metrics exposition and the status page;
errors, unknown paths included, are JSON too, never a traceback.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Final, Protocol

import structlog
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Handler

from jarvis.telemetry.admin import AdminApi, AdminBackend
from jarvis.telemetry.audit import Auditor
from jarvis.telemetry.auth import Credentials, bearer_token
from jarvis.telemetry.clients import Network
from jarvis.telemetry.metrics import Metrics
from jarvis.telemetry.outages import Outages, warn_outage
from jarvis.telemetry.unsubscribe import Unsubscribe
from jarvis.telemetry.web.page import StatusPage
from jarvis.telemetry.web.view import BudgetView, PageBackend

__all__ = ["AdminBackend", "HttpServer", "WebhookBackend"]

log = structlog.get_logger(__name__)

#: Seconds a readiness check may take before the probe answers 503; a hung
#: database must not pile up probe requests.
DEFAULT_READY_TIMEOUT: Final = 5.0
#: Seconds `stop` waits for in-flight requests; shorter than the loop's shutdown grace.
_SHUTDOWN_TIMEOUT: Final = 2.0
#: Bytes a Stripe webhook body may have; Stripe's events are a few kilobytes.
WEBHOOK_MAX_BYTES: Final = 256 * 1024
# Headers an error page carries that a JSON body replaces.
_BODY_HEADERS: Final = frozenset({"content-type", "content-length"})


def _json(body: dict[str, object], status: int = 200) -> web.Response:
    return web.json_response(body, status=status)


class _MalformedRequests(logging.Filter):
    """Makes a request aiohttp cannot parse one warning line instead of an error with a trace.

    Anyone who reaches the port can send one (a scanner, a broken client), and
    each would otherwise be a multi-line ERROR in the daemon's log. Failures of
    our own handlers are not these: the middleware answers and logs them.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError) and 400 <= (exc.code or 0) < 500:
            reason = " ".join(str(exc.message).split())[:200]
            # aiohttp logs "Error handling request from %s" with the peer as its one argument.
            remote = record.args[0] if isinstance(record.args, tuple) and record.args else "unknown"
            record.msg = "http.malformed_request from %s: %s %s"
            record.args = (remote, exc.code, reason)
            if record.levelno > logging.WARNING:  # aiohttp logs some at DEBUG already
                record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.exc_info = record.exc_text = None
        return True


_PROTOCOL_LOG: Final = logging.getLogger("jarvis.telemetry.http.protocol")
"""aiohttp's protocol logger for this server; `start` gives it the filter (once)."""
_MALFORMED: Final = _MalformedRequests()


@web.middleware
async def _json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn router errors (404, 405) and unexpected failures into JSON answers."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        headers = {k: v for k, v in exc.headers.items() if k.lower() not in _BODY_HEADERS}
        return web.json_response(
            {"error": exc.reason, "path": request.path}, status=exc.status, headers=headers
        )
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        # One broken handler answers 500; it must not take the site down.
        log.exception("http.handler_failed", path=request.path)
        return _json({"error": f"internal error ({exc.__class__.__name__})"}, status=500)


class WebhookBackend(Outages, Protocol):
    """Receives one webhook delivery; answers an HTTP status and a JSON body with an
    ``outcome``, or raises: a failure its `outage` says is an outage is a 503 (the sender
    delivers again), any other a bug."""

    async def receive(
        self, body: bytes, signature: str | None
    ) -> tuple[int, dict[str, object]]: ...

    async def aclose(self) -> None: ...


class HttpServer:
    """``/metrics``, ``/healthz``, ``/readyz``, ``/v1/killswitch`` and ``/`` on one port."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        metrics: Metrics,
        healthy: Callable[[], tuple[bool, str]],
        ready: Callable[[], Awaitable[tuple[bool, dict[str, str]]]],
        admin: AdminBackend | None,
        admin_token: str | None,
        read_token: str | None = None,
        redact: Callable[[str], str] | None = None,
        page: PageBackend | None = None,
        budget: Callable[[], BudgetView | None] | None = None,
        ready_timeout: float = DEFAULT_READY_TIMEOUT,
        stripe_webhook: WebhookBackend | None = None,
        webhook_max_bytes: int = WEBHOOK_MAX_BYTES,
        unsubscribe: Unsubscribe | None = None,
        trusted_proxies: Sequence[Network] = (),
    ) -> None:
        self._host = host
        self._unsubscribe = unsubscribe
        self._requested_port = port
        self._metrics = metrics
        self._healthy = healthy
        self._ready = ready
        self._ready_timeout = ready_timeout
        self._credentials = Credentials(admin_token=admin_token, read_token=read_token)
        # The daemon passes the store's redactor (every configured secret); the
        # tokens alone are the least a standalone server must keep out of its audit.
        self._redact = redact or self._credentials.redact
        self._admin = AdminApi(
            backend=admin,
            credentials=self._credentials,
            metrics=metrics,
            redact=self._redact,
            trusted_proxies=trusted_proxies,
        )
        self._page = None
        if page is not None:
            auditor = Auditor(
                sink=page, metrics=metrics, redact=self._redact, trusted_proxies=trusted_proxies
            )
            self._page = StatusPage(
                backend=page,
                credentials=self._credentials,
                auditor=auditor,
                healthy=healthy,
                budget=budget,
            )
        self._webhook = stripe_webhook
        self._webhook_max_bytes = webhook_max_bytes
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    def _app(self) -> web.Application:
        app = web.Application(middlewares=[_json_errors])
        app.router.add_get("/metrics", self._handle_metrics)
        app.router.add_get("/healthz", self._handle_healthz)
        app.router.add_get("/readyz", self._handle_readyz)
        # Every method is routed to the admin API so that even a refused PUT is recorded.
        app.router.add_route("*", "/v1/killswitch", self._admin.handle)
        if self._webhook is not None:
            app.router.add_post("/webhooks/stripe", self._handle_stripe)
        if self._page is not None:
            self._page.add_routes(app)
        if self._unsubscribe is not None:
            self._unsubscribe.add_routes(app)
        return app

    async def start(self) -> None:
        """Bind and start serving; port 0 picks a free port (see `port`)."""
        if self._runner is not None:
            raise RuntimeError("HttpServer already started")
        _PROTOCOL_LOG.addFilter(_MALFORMED)  # a no-op when it has it already
        # The loop logs what matters; an access line per scrape and probe is noise.
        runner = web.AppRunner(
            self._app(),
            access_log=None,
            shutdown_timeout=_SHUTDOWN_TIMEOUT,
            logger=_PROTOCOL_LOG,
        )
        await runner.setup()
        try:
            await web.TCPSite(runner, self._host, self._requested_port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._port = int(runner.addresses[0][1])
        log.info("http.started", host=self._host, port=self._port)

    @property
    def port(self) -> int:
        """The bound port; only known once `start` has returned."""
        if self._port is None:
            raise RuntimeError("HttpServer not started")
        return self._port

    async def stop(self) -> None:
        """Stop accepting, let in-flight requests finish briefly, release the port."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        await runner.cleanup()
        if self._webhook is not None:
            await self._webhook.aclose()
        log.info("http.stopped", port=self._port)
        self._port = None

    async def _handle_metrics(self, _request: web.Request) -> web.Response:
        body, content_type = self._metrics.render()
        # Passed as a header: the content type carries a charset, which
        # web.Response(content_type=...) refuses.
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def _handle_healthz(self, _request: web.Request) -> web.Response:
        try:
            ok, detail = self._healthy()
        except Exception as exc:
            # A broken health check means unhealthy, said as JSON.
            log.exception("http.healthz_failed")
            return _json({"status": "error", "detail": exc.__class__.__name__}, status=503)
        return _json({"status": "ok" if ok else "unhealthy", "detail": detail}, 200 if ok else 503)

    async def _handle_readyz(self, request: web.Request) -> web.Response:
        try:
            async with asyncio.timeout(self._ready_timeout):
                ok, checks = await self._ready()
        except TimeoutError:
            detail = f"readiness checks did not answer within {self._ready_timeout:g} s"
            return _json({"status": "not_ready", "checks": {}, "detail": detail}, status=503)
        except Exception as exc:
            # A failing check means not ready, said as JSON.
            log.exception("http.readyz_failed")
            detail = f"readiness check failed ({exc.__class__.__name__})"
            return _json({"status": "not_ready", "checks": {}, "detail": detail}, status=503)
        status = "ready" if ok else "not_ready"
        if self._credentials.identify(bearer_token(request)) is None:
            # The port serves the public too (/unsubscribe, webhooks), and a check's
            # words name the database's host, port, name and role: which checks fail
            # is for anyone's probe, why for a caller with a token (and the log).
            checks = {name: "ok" if said == "ok" else "failing" for name, said in checks.items()}
        return _json({"status": status, "checks": dict(checks)}, 200 if ok else 503)

    async def _handle_stripe(self, request: web.Request) -> web.Response:
        assert self._webhook is not None  # noqa: S101 - routed only when there is one
        limit = self._webhook_max_bytes
        body = b""
        if (request.content_length or 0) <= limit:
            try:
                body = await _read_at_most(request, limit + 1)
            except web.RequestPayloadError:
                # A body that does not decode as its Content-Encoding: nothing to verify.
                self._metrics.stripe_webhooks.labels("bad_payload").inc()
                return _json({"outcome": "bad_payload", "error": "body unreadable"}, status=400)
        if len(body) > limit or (request.content_length or 0) > limit:
            self._metrics.stripe_webhooks.labels("too_large").inc()
            return _json({"error": f"body larger than {limit} bytes"}, status=413)
        try:
            status, answer = await self._webhook.receive(
                body, request.headers.get("Stripe-Signature")
            )
        except Exception as exc:
            if not warn_outage(self._webhook.outage, exc, "stripe webhook not recorded"):
                raise  # a bug: the middleware's 500, with its traceback
            status, answer = 503, {"outcome": "unavailable", "error": "unavailable"}
        self._metrics.stripe_webhooks.labels(str(answer.get("outcome", "unknown"))).inc()
        return _json(answer, status=status)


async def _read_at_most(request: web.Request, limit: int) -> bytes:
    """The body, up to ``limit`` bytes: a chunked or understated body is cut off there."""
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = await request.content.read(limit - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)
