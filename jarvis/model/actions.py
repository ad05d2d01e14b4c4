"""What is proposed and decided: typed actions, the guard's verdict, the outcome.

Policies build `Action`s with one parameters type per kind; the guard answers
each with a `Verdict`; the owning actuator answers an applied one with an
`Outcome`. A new kind is one more parameters dataclass with a ``kind`` name:
nothing here enumerates them.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Protocol

from jarvis.model.resources import JSON, ResourceRef
from jarvis.model.slots import slot_init

#: Routing weights and floors are compared with this slack: they are written as decimals.
WEIGHT_TOLERANCE = 1e-6


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
    START = "start"
    STOP = "stop"
    SET_DNS_WEIGHTS = "set_dns_weights"


class BlockReason(enum.StrEnum):
    """Why the guard refused an action; recorded in `action.blocked` payloads."""

    KILLSWITCH = "killswitch"
    ALLOWLIST = "allowlist"
    BOUNDS = "bounds"
    RETRY_BUDGET = "retry_budget"
    BUDGET = "budget"
    """A disruption budget (changes per time window, `jarvis.safety.budgets`) is spent."""
    QUARANTINE = "quarantine"
    DRY_RUN = "dry_run"
    SHUTDOWN = "shutdown"
    TICK_TIMEOUT = "tick_timeout"
    PROVIDER_DEGRADED = "provider_degraded"
    """The provider's circuit breaker is open: its calls keep failing temporarily."""
    FLEET_PAUSED = "fleet_paused"
    """The fleet breaker is open: too many actions failed across the fleet."""
    STORE_UNAVAILABLE = "store_unavailable"
    """The action's intent and ledger update could be neither committed nor spooled."""
    OTHER_SHARD = "other_shard"
    """With shards: the target is in a shard another replica holds (and acts on)."""


class OutcomeStatus(enum.StrEnum):
    """What happened when an actuator applied an action."""

    OK = "ok"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    """No answer came (the call's deadline, the shutdown's, or the provider's own): the
    change may have been made. Recorded as `action.unknown`."""


class ErrorKind(enum.StrEnum):
    """The kinds of failure at the actuator boundary."""

    TEMPORARY = "temporary"
    """Worth retrying later (throttling, 5xx, timeouts); counted by the retry budget."""
    TERMINAL = "terminal"
    """Retrying cannot help (bad request, access denied): escalated at once."""
    GONE = "gone"
    """The target itself is not there (deleted, or being deleted, since it was observed):
    nothing to retry and no one to page. The loop's one rule for it is in
    `jarvis.loop.apply`: recorded failed, no failure counted, no escalation."""


GONE_LABEL = "gone (deleted since observed)"
"""What every reader says of an outcome whose target was gone (`Outcome.gone`, `Event.gone`).

The tick report, `jarvis events` and the status page say it; the counts (the
metrics' and reports' ``outcome``) name it `ErrorKind.GONE`, apart from the failures:
the target was deleted, most likely by a human, and nothing failed."""


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
class Start:
    """Start a service that is not running; nothing when it already runs."""

    kind: ClassVar[str] = ActionKind.START.value


@dataclass(frozen=True, slots=True)
class Stop:
    """Stop a running service; nothing when it is not running."""

    kind: ClassVar[str] = ActionKind.STOP.value


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
class SetDnsWeights:
    """Give each weighted DNS record of one name its weight (Route 53: 0..255, relative).

    Keyed by the record's set identifier. Named ``record_weights``, not
    ``weights``: these are integer shares of DNS answers, not routing fractions
    summing to 1, and nothing that checks the latter may mistake them for it.
    """

    kind: ClassVar[str] = ActionKind.SET_DNS_WEIGHTS.value
    record_weights: Mapping[str, int]


@slot_init
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
    actor: str | None = None
    """Who asked for it when a person did (``cli:alice``, `jarvis restart`); None for policies."""

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


@slot_init
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


@slot_init
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

    @property
    def gone(self) -> bool:
        """The provider answered that the target is not there (`ErrorKind.GONE`)."""
        return self.status is OutcomeStatus.FAILED and self.error_kind is ErrorKind.GONE

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
    def timed_out(cls, detail: str, code: str | None = None) -> Outcome:
        """Sent, and no answer came in time: the change may or may not have been made."""
        return cls(
            status=OutcomeStatus.TIMED_OUT,
            detail=detail,
            error_kind=ErrorKind.TEMPORARY,
            error_code=code,
        )

    @classmethod
    def withheld(cls, reason: BlockReason, detail: str) -> Outcome:
        """Not sent: ``reason`` (the kill switch) stopped it after its intent was durable.

        The intent must be closed, so this is an outcome, recorded as
        `action.failed` (a kind every reader, and an older Jarvis beside this
        one, already knows) with the reason as its code, the name
        `action.blocked` gives it. No error kind: no provider was called, so
        neither a breaker nor a retry budget counts it (`Event.withheld`).
        """
        return cls(status=OutcomeStatus.FAILED, detail=detail, error_code=reason.value)
