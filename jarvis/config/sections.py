"""Settings sections owned by the core: store, loop, safety, HTTP, simulated fleet.

Provider and policy sections live in sibling modules (`aws`, `kubernetes`,
`cloudrun`, `policies`) so each grows beside the code that reads it. Every
section forbids unknown keys, so a typo is an error that names the key.
"""

from __future__ import annotations

from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    IPvAnyNetwork,
    field_validator,
    model_validator,
)

from jarvis.config.urls import plain_text
from jarvis.model import EventKind


class Section(BaseModel):
    """Base for every settings section: frozen, and strict about unknown keys."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def _known_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        # OSError: "America" is a directory of the zone database, "zone.tab" a file
        # that is no zone; IsADirectoryError ended `config check` in a traceback.
        raise ValueError(f"unknown time zone {value!r} (want an IANA name)") from None
    return value


TimeZone = Annotated[str, AfterValidator(_known_zone)]
"""An IANA time zone name ("Europe/Berlin"), for schedules, budgets and the report."""


class AllowEntry(Section):
    """One allow-list entry: a provider, a resource glob and the action kinds allowed.

    ``resources`` is matched against the resource path (the part after
    ``provider://``) with shell-style globbing; ``actions`` may be ``["*"]``.
    Whether the provider exists and applies those kinds is checked against the
    provider registry (`jarvis.providers.check_allowlist`), which config cannot see.
    """

    provider: Annotated[str, Field(min_length=1, pattern=r"^[a-z][a-z0-9_-]*$")]
    resources: Annotated[str, Field(min_length=1)] = "*"
    actions: Annotated[list[str], Field(min_length=1)]


def _default_allowlist() -> list[AllowEntry]:
    # Only the simulated fleet: no real resource is ever allowed by default.
    return [AllowEntry(provider="sim", resources="*", actions=["*"])]


class LoopSettings(Section):
    interval: Annotated[float, Field(ge=0.01, le=86_400)] = 30.0
    """Seconds between tick starts (below a second only for tests)."""
    jitter: Annotated[float, Field(ge=0, le=0.5)] = 0.05
    """Fraction of the interval by which a tick start may be delayed at random."""
    tick_timeout: Annotated[float | None, Field(gt=0, le=86_400)] = None
    """Seconds a whole tick may take; defaults to the interval."""
    observe_timeout: Annotated[float, Field(gt=0, le=3600)] = 10.0
    apply_timeout: Annotated[float, Field(gt=0, le=3600)] = 20.0
    shutdown_grace: Annotated[float, Field(gt=0, le=10)] = 8.0
    """Seconds from SIGTERM until the daemon has stopped: an apply in flight, the flushes, the
    lease release and the HTTP stop share it (`jarvis.loop.shutdown`)."""
    history_snapshots: Annotated[int, Field(ge=1, le=1000)] = 20
    shards: Annotated[int, Field(ge=1, le=1024)] = 1
    """Partitions of the fleet, each with its own lease (`jarvis.loop.shards`); replicas on
    PostgreSQL share them out. 1: one leader runs the whole loop."""

    @model_validator(mode="after")
    def _tick_has_room(self) -> LoopSettings:
        room = self.observe_timeout + self.apply_timeout
        if self.tick_timeout is not None and self.tick_timeout < room:
            raise ValueError(
                f"loop.tick_timeout {self.tick_timeout:g} s is shorter than observe_timeout + "
                f"apply_timeout ({room:g} s): a tick could be cut in the middle of an apply"
            )
        return self


REPLICAS_MAX = 2**31 - 1
"""The most replicas any count or scaling step may say: Kubernetes' replicas and its HPA
policies' values are int32, and so are ECS's desiredCount and Cloud Run's instance counts.
2^70 was accepted, and a huge scale-up percentage overflowed a float at every scale-up."""


class BoundsSettings(Section):
    max_actions_per_tick: Annotated[int, Field(ge=0)] = 10
    """The blast radius: actions applied in one tick, across all resources."""
    max_replicas: Annotated[int, Field(ge=1, le=REPLICAS_MAX)] = 100
    """No scale action may ask for more replicas than this, whatever a policy says."""
    max_traffic_shift: Annotated[float, Field(gt=0, le=1)] = 0.5
    """The largest change of any one model's routing weight in one tick."""
    max_dns_weight_shift: Annotated[int, Field(ge=1, le=255)] = 128
    """The largest change of any one DNS record's weight (0..255) in one tick; each write
    is an attempt of the retry budget, so a failover should take one or two."""


class RetrySettings(Section):
    max_attempts: Annotated[int, Field(ge=1, le=10)] = 3
    window_seconds: Annotated[float, Field(gt=0, le=7 * 86_400)] = 3600.0
    backoff_ticks: Annotated[list[Annotated[int, Field(ge=1, le=1000)]], Field(min_length=1)] = [
        1,
        2,
        4,
    ]
    """Ticks to wait after the 1st, 2nd, … failure before the next attempt."""


def _plain_name(value: str | None) -> str | None:
    return value if value is None else plain_text(value)


_DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"


class LeaseSettings(Section):
    """Leader election on PostgreSQL (`jarvis.store.lease`); controller-runtime's timings.

    ``backend = "kubernetes"`` elects through a ``coordination.k8s.io/v1`` Lease
    named ``kubernetes_lease`` in ``kubernetes_namespace`` instead
    (`jarvis.loop.kube_lease`), reached as the ``[kubernetes]`` section says
    (in-cluster when it is absent); the fence is still the PostgreSQL row's epoch.

    The leader renews every ``retry_period`` and steps down when it has not
    renewed for ``renew_deadline``; a follower takes over once the lease has
    gone ``duration`` unrenewed (measured on the database's clock). The order
    ``duration > renew_deadline > 1.2 x retry_period`` is what keeps the
    leader's own view ending before anyone else's can begin.
    """

    duration: Annotated[float, Field(gt=0, le=3600)] = 15.0
    renew_deadline: Annotated[float, Field(gt=0, le=3600)] = 10.0
    retry_period: Annotated[float, Field(gt=0, le=600)] = 2.0
    replica_id: Annotated[
        str | None, Field(min_length=1, max_length=200), AfterValidator(_plain_name)
    ] = None
    """This replica's name in the lease and in events; default host-pid-random. No control
    character: PostgreSQL refuses a NUL, so a replica named with one never took the lease."""
    backend: Literal["postgresql", "kubernetes"] = "postgresql"
    """Who elects: the lease row itself, or a Kubernetes Lease (fenced by the row either way)."""
    kubernetes_namespace: Annotated[str, Field(pattern=_DNS_LABEL, max_length=63)] = "default"
    kubernetes_lease: Annotated[str, Field(pattern=_DNS_SUBDOMAIN, max_length=253)] = "jarvis"

    @model_validator(mode="after")
    def _ordered(self) -> LeaseSettings:
        if not self.duration > self.renew_deadline:
            raise ValueError(
                f"lease.duration ({self.duration:g} s) must be longer than "
                f"lease.renew_deadline ({self.renew_deadline:g} s)"
            )
        if not self.renew_deadline > 1.2 * self.retry_period:
            raise ValueError(
                f"lease.renew_deadline ({self.renew_deadline:g} s) must be longer than "
                f"1.2 x lease.retry_period ({self.retry_period:g} s)"
            )
        return self


class HttpSettings(Section):
    host: str = "0.0.0.0"  # noqa: S104 - a container must listen beyond loopback
    port: Annotated[int | None, Field(ge=0, le=65535)] = None
    """Defaults to $PORT, else 8080."""
    enabled: bool = True
    trusted_proxies: tuple[IPvAnyNetwork, ...] = ()
    """Networks (CIDRs) of the load balancers in front of the daemon.

    A request from inside one is from the right-most ``X-Forwarded-For``
    address outside them (the status page's login throttle keys on it); empty,
    every request is from the address it connects from."""


class SimulatedSettings(Section):
    enabled: bool | None = None
    """None: on when no real provider is configured."""
    seed: int = 7
    services: Annotated[int, Field(ge=1, le=100_000)] = 6
    script: bool = True
    """Play the newcomer's script: one crash healed, one service that never recovers."""
    fail_rate: Annotated[float, Field(ge=0, le=1)] = 0.0
    """Probability that any apply fails (used by simulation and benchmarks)."""


class HealSettings(Section):
    enabled: bool = True
    restart_degraded: bool = False
    """Also restart resources that are only degraded, not just unhealthy."""
    start_grace_seconds: Annotated[float, Field(ge=0, le=3600)] = 180.0
    """After a resource's desired count is raised (a wake from zero, a scale-up), its
    missing replicas count as starting, not broken, for this long (0: no grace)."""


ROWS_MAX = 2**63 - 1
"""The largest count a query can take (SQLite's INTEGER, PostgreSQL's bigint): a larger
``max_count`` raised an OverflowError at the first prune, after `config check` passed it."""


class KindRetention(Section):
    """Limits for one event kind, over the section's defaults."""

    max_age_days: Annotated[float | None, Field(ge=1, le=36_500)] = None
    max_count: Annotated[int | None, Field(ge=1_000, le=ROWS_MAX)] = None


class RetentionSettings(Section):
    """How long events are kept: by age and by count, per kind; applied by the daemon.

    A quarantined service adds about four rows a tick, so without this the
    event table only grows. Pruning never deletes an open intent, the outcome
    of an intent it keeps, the newest event of a kind (the last kill-switch
    flip is read back from it), the escalation of a resource still
    quarantined, a silence's events younger than the longest silence, or
    anything younger than the policies' history horizon or the longest budget window.
    The floors (a day, a thousand rows) keep a typo from emptying the record.
    """

    enabled: bool = True
    max_age_days: Annotated[float, Field(ge=1, le=36_500)] = 30.0
    """Events older than this are deleted (per kind unless ``kinds`` says otherwise)."""
    max_count: Annotated[int, Field(ge=1_000, le=ROWS_MAX)] = 100_000
    """At most this many events of each kind are kept; the oldest go first."""
    kinds: dict[str, KindRetention] = {}
    """Per-kind limits, e.g. ``[retention.kinds."resource.changed"] max_age_days = 7``."""
    interval: Annotated[float, Field(ge=1, le=7 * 86_400)] = 3600.0
    """Seconds between two prunes by the daemon (and one shortly after it starts)."""
    batch: Annotated[int, Field(ge=100, le=1_000_000)] = 10_000
    """At most this many rows deleted per kind per prune, so one prune stays short."""

    @field_validator("kinds")
    @classmethod
    def _known_kinds(cls, value: dict[str, KindRetention]) -> dict[str, KindRetention]:
        known = {kind.value for kind in EventKind}
        unknown = sorted(set(value) - known)
        if unknown:
            choices = ", ".join(sorted(known))
            raise ValueError(f"unknown event kind {unknown[0]!r}; one of: {choices}")
        return value

    def limits(self, kind: str) -> tuple[float, int]:
        """(max age in days, max count) for ``kind``: its own limits over the defaults."""
        own = self.kinds.get(kind, KindRetention())
        return (
            own.max_age_days if own.max_age_days is not None else self.max_age_days,
            own.max_count if own.max_count is not None else self.max_count,
        )
