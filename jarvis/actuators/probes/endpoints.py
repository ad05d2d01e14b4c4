"""HTTP(S) endpoint probes: does a URL answer, how fast, and for how long is its certificate good?

An observe-only `Sensor` the composition root builds from ``[[probes.endpoints]]``
(`jarvis.providers`, the ``endpoints`` provider); the reconciler calls `observe`
each tick. Every endpoint becomes a resource of kind ``endpoint``,
``endpoint://NAME``, probed from where Jarvis runs: a GET on a fresh connection
(DNS, TCP, TLS and the answer, as a new client would see them), redirects not
followed, under the endpoint's timeout, with at most ``endpoint_concurrency``
probes in flight.

Metrics: ``latency_ms`` (the whole round trip; a timeout reports the timeout).
Attributes: ``target`` (the URL with its password and query values masked),
``status``, ``cert_days_left`` (https only, verified or not), ``region`` and
``cloud``, ``failures`` (consecutive), ``error`` when the probe failed. Health:
healthy; degraded after a failed probe, or with fewer than ``min_cert_days``
left; unhealthy after ``failure_threshold`` consecutive failures. The count of
consecutive failures is the only state kept, in memory: a restart starts it at
zero. A failed probe is an unhealthy resource, never a failed observe.
"""

from __future__ import annotations

import codecs
import contextlib
import functools
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

import aiohttp
import anyio
from anyio.streams.tls import TLSAttribute

from jarvis.actuators.base import Scope
from jarvis.actuators.probes.dependencies import error_text
from jarvis.config.endpoints import EndpointSettings, display_url
from jarvis.model import Clock, Health, Metric, ResourceRef, ResourceState

PROVIDER = "endpoint"
BODY_LIMIT = 1 << 20
"""Bytes of the body read for ``expect_body``: a health page, not a download."""


@dataclass(frozen=True, slots=True)
class Answer:
    """What one probe saw; ``problem`` is None when every expectation held."""

    latency_ms: float
    status: int | None = None
    cert_days_left: float | None = None
    problem: str | None = None
    error: str | None = None


def endpoint_ref(name: str) -> ResourceRef:
    return ResourceRef(PROVIDER, name, "endpoint")


class EndpointSensor:
    """Probes every configured endpoint each tick, concurrently and bounded."""

    name = "endpoints"
    provider = PROVIDER

    def __init__(
        self, endpoints: Sequence[EndpointSettings], *, clock: Clock, concurrency: int = 16
    ) -> None:
        self._endpoints = tuple(endpoints)
        self._clock = clock
        self._limiter = anyio.CapacityLimiter(concurrency)
        self._failures: dict[str, int] = {}
        self._session: aiohttp.ClientSession | None = None

    @property
    def endpoints(self) -> tuple[EndpointSettings, ...]:
        return self._endpoints

    async def observe(self, _scope: Scope | None = None) -> Sequence[ResourceState]:
        session = self._open()
        results: list[ResourceState] = []

        async def run(endpoint: EndpointSettings) -> None:
            async with self._limiter:
                answer = await probe(session, endpoint, self._clock.now())
            results.append(self._state(endpoint, answer))

        async with anyio.create_task_group() as group:
            for endpoint in self._endpoints:
                group.start_soon(run, endpoint)
        return sorted(results, key=lambda state: state.ref)

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # A fresh connection per probe (force_close): the latency is what a
            # new client sees, TLS handshake included, and every https probe
            # reads the certificate the server presents now.
            connector = aiohttp.TCPConnector(force_close=True, limit=0)
            self._session = aiohttp.ClientSession(connector=connector, auto_decompress=True)
        return self._session

    def _state(self, endpoint: EndpointSettings, answer: Answer) -> ResourceState:
        failures = 0 if answer.problem is None else self._failures.get(endpoint.name, 0) + 1
        self._failures[endpoint.name] = failures
        attributes: dict[str, str | int | float] = {
            "target": display_url(endpoint.url.get_secret_value()),
            "failures": failures,
        }
        if endpoint.region:
            attributes["region"] = endpoint.region
        if endpoint.cloud:
            attributes["cloud"] = endpoint.cloud
        if answer.status is not None:
            attributes["status"] = answer.status
        if answer.cert_days_left is not None:
            attributes["cert_days_left"] = round(answer.cert_days_left, 2)
        if answer.error is not None:
            attributes["error"] = answer.error
        health, detail = Health.HEALTHY, ""
        if answer.problem is not None:
            unhealthy = failures >= endpoint.failure_threshold
            health = Health.UNHEALTHY if unhealthy else Health.DEGRADED
            # The count stays out of the detail (it is in ``failures``): a
            # detail that changed every tick would record a change every tick.
            detail = answer.problem
        elif answer.cert_days_left is not None and answer.cert_days_left < endpoint.min_cert_days:
            health = Health.DEGRADED
            days = answer.cert_days_left
            detail = (
                f"TLS certificate expired {-days:.1f} days ago"
                if days < 0
                else f"TLS certificate expires in {days:.1f} days "
                f"(fewer than {endpoint.min_cert_days:g})"
            )
        return ResourceState(
            ref=endpoint_ref(endpoint.name),
            health=health,
            observed_at=self._clock.now(),
            detail=detail,
            metrics={Metric.LATENCY_MS: round(answer.latency_ms, 3)},
            attributes=attributes,
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


async def probe(
    session: aiohttp.ClientSession, endpoint: EndpointSettings, now: datetime
) -> Answer:
    """GET ``endpoint`` once and judge the answer against its expectations."""
    url = endpoint.url.get_secret_value()
    verify: ssl.SSLContext | bool = _verifying() if endpoint.verify_tls else False
    timeout = aiohttp.ClientTimeout(total=endpoint.timeout_seconds)
    started = time.perf_counter()

    def elapsed() -> float:
        return (time.perf_counter() - started) * 1000.0

    try:
        with anyio.fail_after(endpoint.timeout_seconds + 1):
            async with session.get(
                url, ssl=verify, timeout=timeout, allow_redirects=False
            ) as response:
                body = await read_body(response.content)
                latency = elapsed()
                charset = _charset(response.charset)
    except TimeoutError:
        return Answer(
            latency_ms=max(elapsed(), endpoint.timeout_seconds * 1000.0),
            problem=f"no answer within {endpoint.timeout_seconds:g} s",
            error="Timeout",
        )
    except aiohttp.ClientSSLError as exc:
        return Answer(elapsed(), problem=f"TLS failed: {error_text(exc)}", error=type(exc).__name__)
    except aiohttp.ClientError as exc:
        return Answer(elapsed(), problem=error_text(exc), error=type(exc).__name__)
    except OSError as exc:
        return Answer(elapsed(), problem=error_text(exc), error=type(exc).__name__)
    days = None
    # The handshake shares the probe's timeout: a probe never takes longer
    # than its timeout, which is what the settings' observe budget counts on.
    with anyio.move_on_after(max(0.0, endpoint.timeout_seconds - latency / 1000.0)):
        days = await cert_days_left(url, now)
    status = response.status
    problem = error = None
    if status not in endpoint.expect_status:
        expected = ", ".join(str(s) for s in endpoint.expect_status)
        problem, error = f"status {status}, expected {expected}", "Status"
    elif endpoint.expect_body is not None and endpoint.expect_body not in body.decode(
        charset, errors="replace"
    ):
        problem, error = f"body lacks {endpoint.expect_body!r}", "Body"
    return Answer(latency, status=status, cert_days_left=days, problem=problem, error=error)


def _charset(named: str | None) -> str:
    """The charset the answer names (``Content-Type``), or UTF-8 when none or an unknown one."""
    if named:
        with contextlib.suppress(LookupError):
            return codecs.lookup(named).name
    return "utf-8"


async def read_body(content: aiohttp.StreamReader) -> bytes:
    """The body up to `BODY_LIMIT`, the rest left unread: one ``read`` returns only what
    has arrived so far. The S3 probe reads its canary object with it too."""
    body = bytearray()
    while len(body) < BODY_LIMIT:
        chunk = await content.read(BODY_LIMIT - len(body))
        if not chunk:
            break
        body += chunk
    return bytes(body)


async def cert_days_left(url: str, now: datetime) -> float | None:
    """Days until the certificate an https URL's server presents expires; None otherwise.

    Its own short TLS handshake, without verification: aiohttp hands the
    connection back before a caller could read the certificate off it, and
    reading the DER bytes unverified means an endpoint probed with
    ``verify_tls = false`` (a self-signed internal one) still warns before its
    certificate lapses. None when the handshake fails (the GET said why); the
    caller bounds the time it may take.
    """
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        return None
    context = _unverified()
    try:
        stream = await anyio.connect_tcp(
            parts.hostname, parts.port or 443, ssl_context=context, tls_hostname=parts.hostname
        )
        async with stream:
            der = stream.extra(TLSAttribute.peer_certificate_binary)  # noqa: S610 - anyio, not Django
    except (OSError, ssl.SSLError, anyio.BrokenResourceError):
        return None
    if not der:
        return None
    from cryptography import x509  # noqa: PLC0415 - only for https endpoints

    expires = x509.load_der_x509_certificate(der).not_valid_after_utc
    return (expires - now).total_seconds() / 86_400


@functools.cache
def _verifying() -> ssl.SSLContext:
    """One verifying context for every probe: building one loads the CA bundle (tens of ms)."""
    return ssl.create_default_context()


@functools.cache
def _unverified() -> ssl.SSLContext:
    """One context that takes any certificate, only to read its expiry."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context
