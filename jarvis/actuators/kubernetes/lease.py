"""A `coordination.k8s.io/v1` Lease as the leader-election lock, by client-go's rules.

Built by `jarvis.loop.kube_lease` when ``lease.backend = "kubernetes"``; it lives
here because this package alone imports the Kubernetes client. It only elects:
fencing stays in PostgreSQL (`jarvis.store.fence`), where the term this lock
hands out becomes the lease row's epoch.

The rules are client-go's ``tools/leaderelection`` over its ``LeaseLock``:

- A candidate reads the Lease. A record with a holder is held while the
  candidate has seen it unchanged for less than ``leaseDurationSeconds``,
  measured on the candidate's own monotonic clock from the moment it first
  saw that record (client-go's ``observedTime``): no clock agreement with the
  holder or the API server is needed, and a paused holder's ``renewTime``,
  whatever it says, is not trusted.
- Taking and renewing are conditional replaces carrying the ``resourceVersion``
  just read: of two candidates that read one version, the API server lets one
  write and answers the other 409 Conflict, which here is "not acquired".
- Releasing (a clean stop) empties ``holderIdentity`` and sets
  ``leaseDurationSeconds`` to 1, as client-go's ``ReleaseOnCancel`` does, so a
  follower need not wait out the lease.

One difference: client-go adds one to ``leaseTransitions`` only when the holder
changes; here every acquisition does, the same holder's new term included,
because the count is the fencing epoch and a term that was lost must not share
its epoch with the next. It never falls below the database's epoch (``floor``),
so a Lease deleted and created again continues the count.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
from kubernetes import client

from jarvis.actuators.base import run_blocking
from jarvis.actuators.kubernetes.client import to_actuator_error

__all__ = ["LeaseLock", "LeaseRecord"]

CONFLICT, NOT_FOUND = 409, 404


def micro_time(moment: datetime) -> datetime:
    """``moment`` as a MicroTime the API server can parse once the client has written it.

    The client writes a datetime with `datetime.isoformat`, which leaves the
    fraction out on a whole second; the API server reads a MicroTime with Go's
    ``time.Parse(RFC3339Micro)``, which needs exactly six fractional digits and
    refuses the Lease (400). One microsecond later it has them; the times are
    informational (validity is measured on the candidate's own clock).
    """
    return moment + timedelta(microseconds=1) if moment.microsecond == 0 else moment


@dataclass(frozen=True, slots=True)
class LeaseRecord:
    """The Lease's spec as read, and the version a conditional write must carry."""

    holder: str
    duration: int
    transitions: int
    acquired: datetime | None
    renewed: datetime | None
    version: str

    @classmethod
    def parse(cls, lease: client.V1Lease) -> LeaseRecord:
        spec = lease.spec or client.V1LeaseSpec()
        meta = lease.metadata or client.V1ObjectMeta()
        return cls(
            holder=spec.holder_identity or "",
            duration=spec.lease_duration_seconds or 0,
            transitions=spec.lease_transitions or 0,
            acquired=spec.acquire_time,
            renewed=spec.renew_time,
            version=meta.resource_version or "",
        )

    def same(self, other: LeaseRecord | None) -> bool:
        """Whether nothing the holder writes changed (the version alone says little)."""
        return other is not None and (
            self.holder,
            self.duration,
            self.transitions,
            self.renewed,
        ) == (other.holder, other.duration, other.transitions, other.renewed)


class LeaseLock:
    """Acquire, renew and release one Lease for one ``holder``; see the module docstring."""

    def __init__(
        self,
        api: client.ApiClient,
        *,
        namespace: str,
        name: str,
        holder: str,
        duration: float,
        request_timeout: float,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._api = client.CoordinationV1Api(api)
        self.namespace = namespace
        self.name = name
        self.holder = holder
        self.duration = math.ceil(duration)  # never shorter than the elector believes
        self._timeout = request_timeout
        self._monotonic = monotonic
        self._wall = wall
        self._limiter = anyio.CapacityLimiter(1)
        self._observed: LeaseRecord | None = None
        self._observed_at = 0.0

    async def acquire(self, floor: int) -> int | None:
        """Take the Lease if it is free, released or unrenewed for its duration.

        Returns the new term (its ``leaseTransitions``), or None when another
        holds it or won the race. Raises ActuatorError when the API cannot be read.
        """
        record = await self._read()
        now = self._wall()
        if record is None:
            term = floor + 1
            created = await self._write(None, self._spec(term, acquired=now, renewed=now))
            return None if created is None else term
        if record.holder and record.holder != self.holder and self._valid(record):
            return None
        term = max(record.transitions, floor) + 1
        written = await self._write(record, self._spec(term, acquired=now, renewed=now))
        return None if written is None else term

    async def renew(self, term: int) -> bool:
        """Renew the Lease held under ``term``; False once it is another's or another term."""
        record = await self._read()
        if record is None or record.holder != self.holder or record.transitions != term:
            return False
        spec = self._spec(term, acquired=record.acquired, renewed=self._wall())
        return await self._write(record, spec) is not None

    async def release(self, term: int) -> None:
        """Give the Lease up now (a clean stop), if it is still held under ``term``."""
        record = await self._read()
        if record is None or record.holder != self.holder or record.transitions != term:
            return
        now = micro_time(self._wall())
        spec = client.V1LeaseSpec(
            holder_identity="",
            lease_duration_seconds=1,
            lease_transitions=term,
            acquire_time=now,
            renew_time=now,
        )
        await self._write(record, spec)

    def close(self) -> None:
        """Release the API client's connections."""
        self._api.api_client.close()

    def _valid(self, record: LeaseRecord) -> bool:
        return self._observed_at + record.duration > self._monotonic()

    def _observe(self, record: LeaseRecord) -> None:
        if not record.same(self._observed):
            self._observed, self._observed_at = record, self._monotonic()

    def _spec(self, term: int, *, acquired: datetime | None, renewed: datetime) -> Any:
        return client.V1LeaseSpec(
            holder_identity=self.holder,
            lease_duration_seconds=self.duration,
            lease_transitions=term,
            acquire_time=None if acquired is None else micro_time(acquired),
            renew_time=micro_time(renewed),
        )

    async def _read(self) -> LeaseRecord | None:
        def read() -> client.V1Lease | None:
            try:
                return self._api.read_namespaced_lease(
                    self.name, self.namespace, _request_timeout=self._timeout
                )
            except client.ApiException as exc:
                if exc.status == NOT_FOUND:
                    return None
                raise

        lease = await self._call("reading", read)
        if lease is None:
            return None
        record = LeaseRecord.parse(lease)
        self._observe(record)
        return record

    async def _write(self, current: LeaseRecord | None, spec: Any) -> LeaseRecord | None:
        """Create (``current`` None) or conditionally replace; None when another won."""

        def write() -> client.V1Lease | None:
            meta = client.V1ObjectMeta(name=self.name, namespace=self.namespace)
            try:
                if current is None:
                    body = client.V1Lease(metadata=meta, spec=spec)
                    return self._api.create_namespaced_lease(
                        self.namespace, body, _request_timeout=self._timeout
                    )
                meta.resource_version = current.version
                body = client.V1Lease(metadata=meta, spec=spec)
                return self._api.replace_namespaced_lease(
                    self.name, self.namespace, body, _request_timeout=self._timeout
                )
            except client.ApiException as exc:
                if exc.status == CONFLICT:  # AlreadyExists or a stale resourceVersion
                    return None
                raise

        lease = await self._call("writing", write)
        if lease is None:
            return None
        record = LeaseRecord.parse(lease)
        self._observe(record)
        return record

    async def _call(self, doing: str, func: Callable[[], Any]) -> Any:
        try:
            return await run_blocking(func, self._limiter)
        except Exception as exc:
            raise to_actuator_error(exc, f"{doing} lease {self.namespace}/{self.name}") from exc
