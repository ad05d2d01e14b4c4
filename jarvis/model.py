"""The shared vocabulary of Jarvis: what is observed, proposed, decided and recorded.

Every layer speaks these types: actuators produce `ResourceState`s, the loop
bundles them into a `Snapshot`, policies turn a snapshot into `Action`s, the
guard answers each with a `Verdict`, actuators answer applied actions with an
`Outcome`, and everything becomes an `Event`. This module imports nothing of
Jarvis but its own facets (`jarvis.facets`, re-exported here) and does no
I/O; every type is frozen.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, ClassVar, Protocol

from jarvis.facets import (
    CloudSpend,
    LlmUsage,
    ModelPerformance,
    ModelSpend,
    Rollout,
    RolloutState,
    RouteUsage,
    RouteWeights,
    Versions,
    month_bounds,
)

# The facets are part of the model: re-exported so that layers which may import
# only `jarvis.model` (policies, safety) reach them here.
__all__ = [
    "CloudSpend",
    "LlmUsage",
    "ModelPerformance",
    "ModelSpend",
    "Rollout",
    "RolloutState",
    "RouteUsage",
    "RouteWeights",
    "Versions",
    "month_bounds",
]

#: A JSON-compatible value, as stored in event payloads and resource attributes.
JSON = Any

#: Routing weights and floors are compared with this slack: they are written as decimals.
WEIGHT_TOLERANCE = 1e-6


class Health(enum.StrEnum):
    """How an actuator judges a resource it observed."""

    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNHEALTHY = "unhealthy"
    UNKNOWN = "unknown"


class ActionKind(enum.StrEnum):
    """The names of the built-in action kinds.

    Not the closed set of kinds: an action's kind is whatever string its
    params class declares, and a new kind needs only a params dataclass and
    the actuator that lists it in ``action_kinds``.
    """

    SCALE = "scale"
    RESTART = "restart"
    ROLLBACK = "rollback"
    DEPLOY = "deploy"
    SET_WEIGHTS = "set_weights"


class BlockReason(enum.StrEnum):
    """Why the guard refused an action; recorded in `action.blocked` payloads."""

    KILLSWITCH = "killswitch"
    ALLOWLIST = "allowlist"
    BOUNDS = "bounds"
    RETRY_BUDGET = "retry_budget"
    QUARANTINE = "quarantine"
    DRY_RUN = "dry_run"
    SHUTDOWN = "shutdown"


class OutcomeStatus(enum.StrEnum):
    """What happened when an actuator applied an action."""

    OK = "ok"
    FAILED = "failed"
    TIMED_OUT = "timed_out"


class ErrorKind(enum.StrEnum):
    """The two kinds of failure at the actuator boundary."""

    TEMPORARY = "temporary"
    """Worth retrying later (throttling, 5xx, timeouts); counted by the retry budget."""
    TERMINAL = "terminal"
    """Retrying cannot help (bad request, access denied, not found)."""


class EventKind(enum.StrEnum):
    """The kinds of event in the append-only event store."""

    TICK_STARTED = "tick.started"
    TICK_FINISHED = "tick.finished"
    RESOURCE_CHANGED = "resource.changed"
    OBSERVE_FAILED = "observe.failed"
    ACTION_PROPOSED = "action.proposed"
    ACTION_BLOCKED = "action.blocked"
    ACTION_STARTED = "action.started"
    ACTION_APPLIED = "action.applied"
    ACTION_FAILED = "action.failed"
    ACTION_UNKNOWN = "action.unknown"
    ACTION_ESCALATED = "action.escalated"
    KILLSWITCH_ENGAGED = "killswitch.engaged"
    KILLSWITCH_RELEASED = "killswitch.released"
    ADMIN_REQUEST = "admin.request"
    RETRIES_RESET = "retries.reset"
    POLICY_NOTE = "policy.note"
    ALERT = "alert"


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

    def __str__(self) -> str:
        return f"{self.provider}://{self.name}"

    @classmethod
    def parse(cls, uri: str, kind: str = "service") -> ResourceRef:
        """Parse ``provider://name``; raise ValueError on anything else."""
        provider, sep, name = uri.partition("://")
        if not sep or not provider or not name:
            raise ValueError(f"not a resource URI (want provider://name): {uri!r}")
        return cls(provider=provider, name=name, kind=kind)


@dataclass(frozen=True, slots=True)
class Replicas:
    """Replica counts as the provider reports them, and the bounds it enforces."""

    desired: int
    running: int
    pending: int = 0
    min: int | None = None
    max: int | None = None


@dataclass(frozen=True, slots=True)
class ResourceState:
    """One resource as an actuator saw it at one moment.

    The facets (``rollout``, ``versions``, ``weights``, ``llm_usage``,
    ``cloud_spend``) are the typed facts policies and guards read, parsed at
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
    record_nulls: frozenset[str] = frozenset()
    """Facet keys this provider records as null when unknown, rather than leaving out."""

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
        out.update(self.attributes)
        return out


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything observed in one tick: resources by URI, and failed actuators."""

    taken_at: datetime
    resources: Mapping[str, ResourceState]
    errors: Mapping[str, str] = field(default_factory=dict)

    def get(self, uri: str) -> ResourceState | None:
        return self.resources.get(uri)


class ActionParams(Protocol):
    """The parameters of one kind of action: a frozen dataclass naming its kind.

    ``kind`` is a class attribute, so the kind cannot disagree with the
    fields. Fields left None are omitted from the JSON form; a Mapping field
    is written as a JSON object.
    """

    kind: ClassVar[str]
    __dataclass_fields__: ClassVar[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Scale:
    """Set the desired replica count, and/or the autoscaler's min and max."""

    kind: ClassVar[str] = ActionKind.SCALE.value
    replicas: int | None = None
    min_replicas: int | None = None
    max_replicas: int | None = None


@dataclass(frozen=True, slots=True)
class Restart:
    """Replace every running instance with a fresh one of the same version."""

    kind: ClassVar[str] = ActionKind.RESTART.value


@dataclass(frozen=True, slots=True)
class Rollback:
    """Return to ``version`` (a provider's revision name; empty: the previous one)."""

    kind: ClassVar[str] = ActionKind.ROLLBACK.value
    version: str


@dataclass(frozen=True, slots=True)
class Deploy:
    """Roll out a new version running ``image``."""

    kind: ClassVar[str] = ActionKind.DEPLOY.value
    image: str


@dataclass(frozen=True, slots=True)
class SetWeights:
    """Route each model its share of a route's traffic; shares sum to 1."""

    kind: ClassVar[str] = ActionKind.SET_WEIGHTS.value
    weights: Mapping[str, float]


@dataclass(frozen=True, slots=True)
class Action:
    """A change a policy proposes: a target and the typed params of one kind."""

    target: ResourceRef
    params: ActionParams
    policy: str
    reason: str
    cost_delta_per_hour: float | None = None
    priority: int = 0
    """Higher wins when two policies propose for the same resource in one tick."""

    @property
    def kind(self) -> str:
        """The kind's name, as its params class declares it."""
        return self.params.kind

    @property
    def key(self) -> tuple[str, str]:
        """The (resource, action kind) pair the retry budget counts against."""
        return (str(self.target), self.kind)

    def params_json(self) -> dict[str, JSON]:
        """The params that are set, and the cost delta, as a JSON object.

        Events record exactly this object (and the simulation's pinned
        digests hash it), so its keys and their order must not change.
        """
        out: dict[str, JSON] = {}
        for spec in fields(self.params):
            value = getattr(self.params, spec.name)
            if value is None:
                continue
            out[spec.name] = dict(value) if isinstance(value, Mapping) else value
        if self.cost_delta_per_hour is not None:
            out["cost_delta_per_hour"] = round(self.cost_delta_per_hour, 4)
        return out


@dataclass(frozen=True, slots=True)
class Verdict:
    """The guard's answer to one action."""

    allowed: bool
    reason: BlockReason | None = None
    detail: str = ""

    @classmethod
    def allow(cls) -> Verdict:
        return cls(allowed=True)

    @classmethod
    def block(cls, reason: BlockReason, detail: str) -> Verdict:
        return cls(allowed=False, reason=reason, detail=detail)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What an actuator reports after applying an action."""

    status: OutcomeStatus
    detail: str = ""
    error_kind: ErrorKind | None = None
    error_code: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is OutcomeStatus.OK

    @classmethod
    def success(cls, detail: str = "") -> Outcome:
        return cls(status=OutcomeStatus.OK, detail=detail)

    @classmethod
    def failure(
        cls,
        detail: str,
        *,
        kind: ErrorKind = ErrorKind.TEMPORARY,
        code: str | None = None,
    ) -> Outcome:
        return cls(status=OutcomeStatus.FAILED, detail=detail, error_kind=kind, error_code=code)

    @classmethod
    def timed_out(cls, detail: str) -> Outcome:
        return cls(status=OutcomeStatus.TIMED_OUT, detail=detail, error_kind=ErrorKind.TEMPORARY)


@dataclass(frozen=True, slots=True)
class Event:
    """One append-only row of the event store.

    ``idempotency_key`` is unique: replaying a spooled batch, or recording the
    same outcome twice, never duplicates a row.
    """

    kind: EventKind
    ts: datetime
    idempotency_key: str
    tick_id: str | None = None
    resource: str | None = None
    action_kind: str | None = None
    policy: str | None = None
    reason: str | None = None
    payload: Mapping[str, JSON] = field(default_factory=dict)
    action_id: str | None = None
    """Shared by an `action.started` intent and its one outcome event."""
    id: int | None = None
    """Assigned by the store; None until written."""


@dataclass(frozen=True, slots=True)
class RetryState:
    """The retry ledger for one (resource, action kind) pair.

    ``attempts`` are the start times of attempts inside the current window,
    oldest first; ``consecutive_failures`` resets on success.
    """

    resource: str
    action_kind: str
    attempts: tuple[datetime, ...] = ()
    consecutive_failures: int = 0
    retry_after: datetime | None = None
    quarantined: bool = False
    last_error: str = ""
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class KillSwitchState:
    """Whether the kill switch is engaged, and who set it so, why and when."""

    engaged: bool
    actor: str = ""
    reason: str = ""
    changed_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class History:
    """What policies may know besides the current snapshot, passed in as data.

    ``snapshots`` are the most recent ones, oldest first, not including the
    current one. ``events`` are recent events, oldest first (by event time,
    then id), as an `EventHistory` holds them. ``retries`` is the retry ledger
    keyed by (resource, action kind).
    """

    snapshots: Sequence[Snapshot] = ()
    events: Sequence[Event] = ()
    retries: Mapping[tuple[str, str], RetryState] = field(default_factory=dict)


class EventHistory(Protocol):
    """Recorded events by event time: the seam `History.events` is filled through.

    `events_since` answers the events of ``kinds`` (every kind when None) of
    ``resource`` (every resource when None) with ``ts >= since``, ordered by
    ``ts``, then id. It is asynchronous, since the event store stands behind
    it (`jarvis.store.history`), so policies, which are pure and synchronous,
    never call it. A policy states how far back it reads instead, as a
    ``history_horizon`` attribute (a `timedelta`); the reconciler asks this
    seam for the longest horizon stated when it starts, and every tick passes
    what the seam's cache holds, kept current as events are recorded, as
    `History.events`.
    """

    async def events_since(
        self,
        since: datetime,
        *,
        kinds: Collection[str] | None = None,
        resource: str | None = None,
    ) -> Sequence[Event]: ...


class Clock(Protocol):
    """Where time comes from: the wall clock in the daemon, virtual time in tests.

    ``now()`` is timezone-aware UTC. The loop and the simulated fleet read time
    only through a clock, so the same code runs in real and virtual time.
    """

    def now(self) -> datetime: ...

    async def sleep(self, seconds: float) -> None: ...
