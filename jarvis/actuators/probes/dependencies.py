"""Dependency probes: can the fleet reach its Postgres, Redis and S3?

An observe-only actuator built beside the ECS actuator by
`jarvis.actuators.aws.ecs.aws_actuators`; the reconciler calls `observe` each
tick. Every configured dependency becomes a resource of kind ``probe``:
``probe://postgres/NAME`` (``SELECT 1``), ``probe://redis/NAME`` (``PING``),
``probe://s3/BUCKET`` (``head_bucket``, then a presigned GET of a canary
object fetched over plain HTTP, which is how the fleet hands files out).

Metrics: ``latency_ms``. Attributes: ``dependency`` (postgres, redis, s3),
``target`` (host:port/db or bucket/key, never a password), ``error`` (the
error code or exception name, when the probe failed). A failed probe is an
UNHEALTHY resource, not a failed observe: the answer "unreachable" is the
point of probing.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import aiohttp
import anyio
import asyncpg
import redis.asyncio

from jarvis.actuators.aws.clients import aws_call
from jarvis.actuators.base import ActuatorError
from jarvis.config.aws import ProbeSettings, S3ProbeSettings
from jarvis.model import (
    Action,
    Clock,
    ErrorKind,
    Health,
    Outcome,
    ResourceRef,
    ResourceState,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from jarvis.actuators.aws.clients import CallLog

PROVIDER = "probe"


def _target(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname or ''}:{parts.port or ''}{parts.path}"


class ProbeActuator:
    """Observes dependency reachability; owns no action kinds."""

    name = "aws-probes"
    provider = PROVIDER
    action_kinds: frozenset[str] = frozenset()

    def __init__(
        self,
        settings: ProbeSettings,
        *,
        clock: Clock,
        s3: S3Client,
        calls: CallLog,
        limiter: anyio.CapacityLimiter,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._s3 = s3
        self._calls = calls
        self._limiter = limiter

    async def observe(self) -> Sequence[ResourceState]:
        probes: list[tuple[ResourceRef, str, str, Callable[[], Awaitable[None]]]] = []
        for name, secret in self._settings.postgres.items():
            url = secret.get_secret_value()
            probes.append((_ref("postgres", name), "postgres", _target(url), self._pg(url)))
        for name, secret in self._settings.redis.items():
            url = secret.get_secret_value()
            probes.append((_ref("redis", name), "redis", _target(url), self._redis(url)))
        for s3 in self._settings.s3:
            probes.append(
                (_ref("s3", s3.bucket), "s3", f"{s3.bucket}/{s3.canary_key}", self._bucket(s3))
            )
        results: list[ResourceState] = []

        async def run(
            ref: ResourceRef, dependency: str, target: str, probe: Callable[[], Awaitable[None]]
        ) -> None:
            results.append(await self._run(ref, dependency, target, probe))

        async with anyio.create_task_group() as group:
            for ref, dependency, target, probe in probes:
                group.start_soon(run, ref, dependency, target, probe)
        return sorted(results, key=lambda state: state.ref)

    async def _run(
        self, ref: ResourceRef, dependency: str, target: str, probe: Callable[[], Awaitable[None]]
    ) -> ResourceState:
        attributes: dict[str, str] = {"dependency": dependency, "target": target}
        started = time.perf_counter()
        health, detail = Health.HEALTHY, ""
        try:
            with anyio.fail_after(self._settings.timeout_seconds):
                await probe()
        except TimeoutError:
            health = Health.UNHEALTHY
            detail = f"no answer within {self._settings.timeout_seconds:g} s"
            attributes["error"] = "Timeout"
        except ActuatorError as exc:
            health, detail = Health.UNHEALTHY, str(exc)
            attributes["error"] = exc.code or "Error"
        except (OSError, asyncpg.PostgresError, redis.RedisError, aiohttp.ClientError) as exc:
            health, detail = Health.UNHEALTHY, f"{type(exc).__name__}: {exc}"
            attributes["error"] = type(exc).__name__
        latency_ms = (time.perf_counter() - started) * 1000.0
        return ResourceState(
            ref=ref,
            health=health,
            observed_at=self._clock.now(),
            detail=detail,
            metrics={"latency_ms": round(latency_ms, 3)},
            attributes=attributes,
        )

    def _pg(self, url: str) -> Callable[[], Awaitable[None]]:
        dsn = url.replace("postgresql+asyncpg://", "postgresql://", 1)

        async def probe() -> None:
            connection = await asyncpg.connect(dsn, timeout=self._settings.timeout_seconds)
            try:
                value = await connection.fetchval("SELECT 1")
            finally:
                await connection.close()
            if value != 1:
                raise ActuatorError(f"SELECT 1 answered {value!r}", code="BadAnswer")

        return probe

    def _redis(self, url: str) -> Callable[[], Awaitable[None]]:
        async def probe() -> None:
            client = redis.asyncio.Redis.from_url(
                url,
                socket_timeout=self._settings.timeout_seconds,
                socket_connect_timeout=self._settings.timeout_seconds,
            )
            try:
                if not await client.ping():
                    raise ActuatorError("PING was not answered with PONG", code="BadAnswer")
            finally:
                await client.aclose()

        return probe

    def _bucket(self, settings: S3ProbeSettings) -> Callable[[], Awaitable[None]]:
        async def probe() -> None:
            bucket, key = settings.bucket, settings.canary_key
            await aws_call(
                "s3:HeadBucket", lambda: self._s3.head_bucket(Bucket=bucket), self._limiter
            )
            url = self._s3.generate_presigned_url(
                "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=60
            )
            # Fetched over plain HTTP, not the SDK: the request the fleet's users make.
            self._calls.record("s3:GetObject")
            async with aiohttp.ClientSession() as session, session.get(url) as response:
                await response.read()
                if response.status != 200:
                    raise ActuatorError(
                        f"presigned GET of s3://{bucket}/{key} answered HTTP {response.status}",
                        kind=ErrorKind.TEMPORARY,
                        code=f"HTTP{response.status}",
                    )

        return probe

    async def apply(self, action: Action, key: str) -> Outcome:  # noqa: ARG002 -- observe-only
        return Outcome.failure(
            f"{action.target} is observe-only", kind=ErrorKind.TERMINAL, code="ObserveOnly"
        )

    async def aclose(self) -> None:
        """The S3 client belongs to the ECS actuator, which closes it."""


def _ref(dependency: str, name: str) -> ResourceRef:
    return ResourceRef(PROVIDER, f"{dependency}/{name}", "probe")
