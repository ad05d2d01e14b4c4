"""What is observed: resources, their state and the snapshot of one tick.

Actuators and sensors produce `ResourceState`s (their typed facts in
`jarvis.model.facets`); the loop bundles them into a `Snapshot` for policies.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from jarvis.model.customers import Customer
from jarvis.model.facets import (
    CloudSpend,
    DnsWeights,
    LlmUsage,
    Rollout,
    RouteWeights,
    Versions,
)
from jarvis.model.slots import slot_init

#: A JSON-compatible value, as stored in event payloads and resource attributes.
JSON = Any

#: The longest resource URI Jarvis acts on, in UTF-8 bytes. Every event and retry-ledger
#: row is keyed by it, and PostgreSQL refuses an index entry past 2,704 bytes: a longer
#: name would fail every later write. No provider's own names come near it (a Kubernetes
#: namespace and name, an ECS cluster and service: at most about 520).
MAX_URI_BYTES: Final = 1024


def uri_too_long(uri: str) -> bool:
    """Whether ``uri`` is past `MAX_URI_BYTES` (a lone surrogate counted as written)."""
    return len(uri) * 4 > MAX_URI_BYTES and (
        len(uri.encode("utf-8", "surrogatepass")) > MAX_URI_BYTES
    )


class Health(enum.StrEnum):
    """How an actuator judges a resource it observed."""

    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNHEALTHY = "unhealthy"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True, order=True)
class ResourceRef:
    """The identity of a managed resource: a provider and a path within it.

    Written as a URI, ``provider://path`` (``sim://ai-dawg-producer``,
    ``ecs://prod/api``, ``k8s://default/vocal-coach``), which is what the
    allow-list globs, the CLI and the event store use.
    """

    provider: str
    name: str
    kind: str = "service"
    uri: str = field(init=False, repr=False, compare=False)
    """``provider://name``, written once: every tick keys each observed state by it."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "uri", f"{self.provider}://{self.name}")

    def __str__(self) -> str:
        return self.uri

    @classmethod
    def parse(cls, uri: str, kind: str = "service") -> ResourceRef:
        """Parse ``provider://name``; raise ValueError on anything else, or a longer URI
        than `MAX_URI_BYTES`."""
        provider, sep, name = uri.partition("://")
        if not sep or not provider or not name:
            raise ValueError(f"not a resource URI (want provider://name): {uri!r}")
        if uri_too_long(uri):
            raise ValueError(f"resource URI longer than {MAX_URI_BYTES} bytes: {uri[:60]!r}…")
        return cls(provider=provider, name=name, kind=kind)


@slot_init
@dataclass(frozen=True, slots=True)
class Replicas:
    """Replica counts as the provider reports them, and the bounds it enforces."""

    desired: int
    running: int
    pending: int = 0
    min: int | None = None
    max: int | None = None


@slot_init
@dataclass(frozen=True, slots=True)
class ResourceState:
    """One resource as an actuator saw it at one moment.

    The facets (``rollout``, ``versions``, ``weights``, ``llm_usage``,
    ``cloud_spend``, ``dns_weights``) are the typed facts policies and guards read, parsed at
    the actuator boundary; None when the provider does not report them.
    ``metrics`` hold the numbers the provider measures (``cpu_utilization``,
    ``requests_per_minute``, ``p95_latency_ms``, ``error_rate``), by name;
    ``attributes`` hold provider-specific record detail that no policy reads.
    """

    ref: ResourceRef
    health: Health
    observed_at: datetime
    replicas: Replicas | None = None
    version: str | None = None
    detail: str = ""
    metrics: Mapping[str, float] = field(default_factory=dict)
    attributes: Mapping[str, JSON] = field(default_factory=dict)
    rollout: Rollout | None = None
    versions: Versions | None = None
    weights: RouteWeights | None = None
    llm_usage: LlmUsage | None = None
    cloud_spend: CloudSpend | None = None
    customer: Customer | None = None
    dns_weights: DnsWeights | None = None
    record_nulls: frozenset[str] = frozenset()
    """Facet keys this provider records as null when unknown, rather than leaving out."""
    missing: bool = False
    """Its provider answered that this configured resource does not exist (Cloud Run's
    404): UNKNOWN, and never acted on, not even by an operator (`jarvis.policies.operator`).
    An UNKNOWN read for another reason (denied, unreadable) leaves it False."""

    def transition_key(self) -> tuple[object, ...]:
        """What, when it changes, makes a `resource.changed` event.

        Metrics move every tick and are deliberately left out.
        """
        replicas = self.replicas
        return (
            self.health,
            self.version,
            None if replicas is None else (replicas.desired, replicas.running),
            self.detail,
        )

    def same_transition(self, other: ResourceState) -> bool:
        """``self.transition_key() == other.transition_key()``, without building either.

        The loop asks this of every resource every tick; a service's `Replicas`
        is usually the same object from one observation to the next.
        """
        if (
            self.health != other.health
            or self.version != other.version
            or self.detail != other.detail
        ):
            return False
        mine, theirs = self.replicas, other.replicas
        if mine is theirs:
            return True
        if mine is None or theirs is None:
            return False
        return mine.desired == theirs.desired and mine.running == theirs.running

    def record_attributes(self) -> dict[str, JSON]:
        """Facets and remaining attributes as one JSON object, for `resource.changed`.

        The shape recorded before facets existed (one flat object of provider
        keys), kept so the event record, and what reads it back, do not change.
        """
        out: dict[str, JSON] = {}
        nulls = self.record_nulls
        if self.rollout is not None:
            self.rollout.record(out, nulls)
        if self.versions is not None:
            self.versions.record(out, nulls)
        if self.weights is not None:
            self.weights.record(out)
        if self.llm_usage is not None:
            self.llm_usage.record(out)
        if self.customer is not None:
            self.customer.record(out)
        if self.dns_weights is not None:
            self.dns_weights.record(out)
        out.update(self.attributes)
        return out


@slot_init
@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything observed in one tick: resources by URI, and failed actuators."""

    taken_at: datetime
    resources: Mapping[str, ResourceState]
    errors: Mapping[str, str] = field(default_factory=dict)
    gone: frozenset[str] = frozenset()
    """URI prefixes a provider answered are not there (``ecs://CLUSTER/`` of a deleted
    cluster): nothing under one exists, though the observe failed there in part."""
    unanswered: frozenset[str] | None = None
    """The schemes (``k8s``) of the sensors whose observe failed, in full or in part:
    a resource missing from ``resources`` there may still exist. None when not known
    (a snapshot built without its sensors): then any error may be any scheme's."""

    def get(self, uri: str) -> ResourceState | None:
        return self.resources.get(uri)

    def answered(self, scheme: str) -> bool:
        """Every sensor of ``scheme`` answered in full: a resource it did not report is not
        there, whatever the other providers did."""
        if self.unanswered is None:
            return not self.errors
        return scheme not in self.unanswered

    def not_found(self, uri: str) -> str | None:
        """Why its provider says ``uri`` is not there (`ResourceState.missing`, or under a
        prefix in ``gone``); None when it may be."""
        state = self.resources.get(uri)
        if state is not None and state.missing:
            return state.detail or "not found"
        prefix = next((p for p in sorted(self.gone) if uri.startswith(p)), None)
        return None if prefix is None else f"nothing under {prefix} exists"
