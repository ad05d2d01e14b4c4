"""Dependency probes: can the fleet reach its Postgres, Redis and S3?

An observe-only `Sensor` the composition root builds from the ``[probes]``
section (`jarvis.providers`); the reconciler calls `observe` each tick. Every
configured dependency becomes a resource of kind ``probe``:
``probe://postgres/NAME`` (``SELECT 1``), ``probe://redis/NAME`` (``PING``),
``probe://s3/BUCKET`` (built by `jarvis.actuators.aws.s3probe`, since only the
AWS package may speak boto3).

Metrics: ``latency_ms``. Attributes: ``dependency`` (postgres, redis, s3),
``target`` (host:port/db or bucket/key, never a password), ``error`` (the
error code or exception name, when the probe failed). A failed probe is an
UNHEALTHY resource, not a failed observe: the answer "unreachable" is the
point of probing. Each check turns its client's errors into `ActuatorError`,
so this sensor needs none of the clients' exception types.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import anyio

from jarvis.actuators.base import ActuatorError, Scope
from jarvis.config.endpoints import masked_urls
from jarvis.config.probes import ProbeSettings
from jarvis.model import Clock, Health, Metric, ResourceRef, ResourceState

PROVIDER = "probe"

Check = Callable[[], Awaitable[None]]
"""One probe's question: returns when the dependency answered correctly, raises otherwise."""


@dataclass(frozen=True, slots=True)
class Probe:
    ref: ResourceRef
    dependency: str
    target: str
    """Where it points, for the record: never a password."""
    check: Check


def probe_ref(dependency: str, name: str) -> ResourceRef:
    return ResourceRef(PROVIDER, f"{dependency}/{name}", "probe")


class ProbeSensor:
    """Observes dependency reachability, all probes concurrently, each within a timeout."""

    name = "probes"
    provider = PROVIDER

    def __init__(
        self,
        probes: Sequence[Probe],
        *,
        clock: Clock,
        timeout: float,
        close: Callable[[], None] | None = None,
    ) -> None:
        self._probes = tuple(probes)
        self._clock = clock
        self._timeout = timeout
        self._close = close

    @property
    def probes(self) -> tuple[Probe, ...]:
        return self._probes

    async def observe(self, _scope: Scope | None = None) -> Sequence[ResourceState]:
        results: list[ResourceState] = []

        async def run(probe: Probe) -> None:
            results.append(await self._run(probe))

        async with anyio.create_task_group() as group:
            for probe in self._probes:
                group.start_soon(run, probe)
        return sorted(results, key=lambda state: state.ref)

    async def _run(self, probe: Probe) -> ResourceState:
        attributes: dict[str, str] = {"dependency": probe.dependency, "target": probe.target}
        started = time.perf_counter()
        health, detail = Health.HEALTHY, ""
        try:
            with anyio.fail_after(self._timeout):
                await probe.check()
        except TimeoutError:
            health = Health.UNHEALTHY
            detail = f"no answer within {self._timeout:g} s"
            attributes["error"] = "Timeout"
        except ActuatorError as exc:
            health, detail = Health.UNHEALTHY, str(exc)
            attributes["error"] = exc.code or "Error"
        except OSError as exc:
            health, detail = Health.UNHEALTHY, f"{type(exc).__name__}: {exc}"
            attributes["error"] = type(exc).__name__
        latency_ms = (time.perf_counter() - started) * 1000.0
        return ResourceState(
            ref=probe.ref,
            health=health,
            observed_at=self._clock.now(),
            detail=detail,
            metrics={Metric.LATENCY_MS: round(latency_ms, 3)},
            attributes=attributes,
        )

    async def aclose(self) -> None:
        if self._close is not None:
            self._close()


def dependency_probes(settings: ProbeSettings) -> list[Probe]:
    """The Postgres and Redis probes the settings name (S3 ones come from the AWS package)."""
    probes: list[Probe] = []
    for name, secret in settings.postgres.items():
        url = secret.get_secret_value()
        probes.append(
            Probe(
                probe_ref("postgres", name),
                "postgres",
                target_of(url),
                postgres_check(url, settings.timeout_seconds),
            )
        )
    for name, secret in settings.redis.items():
        url = secret.get_secret_value()
        probes.append(
            Probe(
                probe_ref("redis", name),
                "redis",
                target_of(url),
                redis_check(url, settings.timeout_seconds),
            )
        )
    return probes


def target_of(url: str) -> str:
    """``host:port/path`` of a URL as written: where it points, without credentials.

    Taken as text, not parsed: a libpq-style URL lists several hosts
    (``h1:5432,h2:5432``), which `urllib` refuses to read a port from.
    """
    parts = urlsplit(url)
    return f"{parts.netloc.rpartition('@')[2]}{parts.path}"


def postgres_check(url: str, timeout: float) -> Check:
    import asyncpg  # noqa: PLC0415 - only when a Postgres probe is configured

    dsn = url.replace("postgresql+asyncpg://", "postgresql://", 1)

    async def check() -> None:
        try:
            connection = await asyncpg.connect(dsn, timeout=timeout)
            try:
                value = await connection.fetchval("SELECT 1")
            finally:
                await connection.close()
        # Not only the server's errors: asyncpg's own (an authentication method it
        # cannot do, such as GSSAPI without the extra) would fail every probe's observe.
        except (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError) as exc:
            raise _failed(exc) from exc
        if value != 1:
            raise ActuatorError(f"SELECT 1 answered {value!r}", code="BadAnswer")

    return check


def redis_check(url: str, timeout: float) -> Check:
    import redis.asyncio  # noqa: PLC0415 - only when a Redis probe is configured

    async def check() -> None:
        client = redis.asyncio.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout
        )
        try:
            if not await client.ping():
                raise ActuatorError("PING was not answered with PONG", code="BadAnswer")
        except redis.RedisError as exc:
            raise _failed(exc) from exc
        finally:
            await client.aclose()

    return check


def _failed(exc: Exception) -> ActuatorError:
    return ActuatorError(error_text(exc), code=type(exc).__name__)


#: A Python object's default repr, ``<ssl.SSLContext object at 0x7f…>``: its address
#: differs in every process.
_OBJECT_REPR = re.compile(r"<([\w.]+) object at 0x[0-9a-fA-F]+>")


def error_text(exc: BaseException) -> str:
    """A client's error in one line, any URL in it masked (`masked_urls`).

    HTTP clients quote the URL they were asked for: an endpoint's query token,
    a presigned URL's signature and access key id. An object's default repr
    loses its address (aiohttp names its SSL context so in a refused
    connection): the same failure reads the same in every process, and a
    restart does not record it as a change.
    """
    text = masked_urls(str(exc).splitlines()[0]) if str(exc) else ""
    text = _OBJECT_REPR.sub(r"<\1>", text)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
