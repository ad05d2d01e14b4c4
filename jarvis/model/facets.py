"""Typed facts about a resource ("facets"), parsed from provider answers at the actuator boundary.

Part of the model: `jarvis.model` re-exports every name here and `ResourceState`
carries one field per facet (None when the provider does not report it).
Actuators build facets from what their provider says; policies and guards read
only facets, never provider-specific keys. Each facet also knows the keys it
had in the legacy ``attributes`` JSON, because ``resource.changed`` events keep
recording that shape (`ResourceState.record_attributes`). Imports nothing of
Jarvis and does no I/O; every type is frozen.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from jarvis.model.slots import slot_init

__all__ = [
    "CloudSpend",
    "DnsWeights",
    "LlmUsage",
    "ModelPerformance",
    "ModelSpend",
    "Rollout",
    "RolloutState",
    "RouteUsage",
    "RouteWeights",
    "Versions",
    "month_bounds",
    "month_key",
]


def month_bounds(now: datetime) -> tuple[datetime, datetime]:
    """The UTC calendar month containing ``now``: [start, end)."""
    utc = now.astimezone(UTC)
    start = datetime(utc.year, utc.month, 1, tzinfo=UTC)
    end = datetime(utc.year + utc.month // 12, utc.month % 12 + 1, 1, tzinfo=UTC)
    return start, end


def month_key(now: datetime) -> str:
    """``"YYYY-MM"`` of the UTC calendar month containing ``now``: `LlmUsage.month`.

    The one spelling of a month shared by what publishes the usage facet and
    what reads it, so the two cannot disagree about which month a spend is in.
    """
    utc = now.astimezone(UTC)
    return f"{utc.year:04d}-{utc.month:02d}"


def _put(out: dict[str, Any], key: str, value: object, nulls: Collection[str]) -> None:
    # Providers differ on an unknown fact: some wrote an explicit null, some
    # left the key out; ``nulls`` says which, so the record keeps its shape.
    if value is not None or key in nulls:
        out[key] = value


class Metric(enum.StrEnum):
    """The names of the numbers in `ResourceState.metrics`, one vocabulary for every provider.

    Actuators write their measurements under these names and policies read them
    by these names, so neither side can misspell one. A metric a provider does
    not measure is absent, never zero.
    """

    CPU_UTILIZATION = "cpu_utilization"
    """Percent of the requested CPU, averaged over the service's replicas."""
    MEMORY_UTILIZATION = "memory_utilization"
    """Percent of the requested memory."""
    REQUESTS_PER_MINUTE = "requests_per_minute"
    P95_LATENCY_MS = "p95_latency_ms"
    ERROR_RATE = "error_rate"
    """Failed requests over all requests, 0..1."""
    CONCURRENCY = "concurrency"
    """Requests in flight per replica; supplied by metric sources, read by no policy yet."""
    INSTANCES = "instances"
    """Live replicas as a metric source counts them; the reading replaces ``replicas.running``."""
    LATENCY_MS = "latency_ms"
    """A probe's round trip."""
    MONTH_TO_DATE_USD = "month_to_date_usd"
    FORECAST_MONTH_END_USD = "forecast_month_end_usd"
    REQUESTS_MONTH_TO_DATE = "requests_month_to_date"


class RolloutState(enum.StrEnum):
    """Where the newest change of a resource stands, as its provider judges it."""

    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"


@slot_init
@dataclass(frozen=True, slots=True)
class Rollout:
    """The rollout of the version a resource is meant to run."""

    state: RolloutState
    reason: str | None = None
    """The provider's own words on the rollout, when it gives any."""
    crash_looping: bool | None = None
    """Whether pods of the version crash-loop; None when the provider cannot tell."""

    def record(self, out: dict[str, Any], nulls: Collection[str]) -> None:
        out["rollout"] = self.state.value
        _put(out, "rollout_reason", self.reason, nulls)
        _put(out, "crash_looping", self.crash_looping, nulls)


@slot_init
@dataclass(frozen=True, slots=True)
class Versions:
    """What a rollback may return to: the versions the provider still keeps."""

    previous: str | None = None
    """The version that ran before the current one, if the provider knows it."""
    available: tuple[str, ...] = ()
    """Every other version a rollback may target, newest first."""
    stable: str | None = None
    """The current version once the provider calls it settled (ECS only)."""
    image: str | None = None
    """The image the current version runs, where the provider reports one."""

    def record(self, out: dict[str, Any], nulls: Collection[str]) -> None:
        _put(out, "image", self.image, nulls)
        _put(out, "previous_version", self.previous, nulls)
        out["versions_available"] = list(self.available)
        _put(out, "stable_version", self.stable, nulls)


@slot_init
@dataclass(frozen=True, slots=True)
class RouteWeights:
    """The traffic weights of an LLM route, by model, and the write that set them."""

    weights: Mapping[str, float]
    version: int
    """Bumped by every write: a compare-and-set token."""
    floors: Mapping[str, float]
    """The least weight each model keeps, as configured for the route."""

    def record(self, out: dict[str, Any]) -> None:
        out["weights"] = self.weights
        out["weights_version"] = self.version
        out["floors"] = self.floors


@dataclass(frozen=True, slots=True)
class DnsWeights:
    """The weighted records of one DNS name and type, by set identifier, as the zone holds them."""

    weights: Mapping[str, int]
    """Set identifier → weight (Route 53: 0..255; a record's share is its weight over the sum)."""

    def record(self, out: dict[str, Any]) -> None:
        out["record_weights"] = dict(sorted(self.weights.items()))


@slot_init
@dataclass(frozen=True, slots=True)
class ModelSpend:
    """One model's spend this month, over every route."""

    cost_usd: float
    requests: int


@slot_init
@dataclass(frozen=True, slots=True)
class RouteUsage:
    """One route's usage this month."""

    cost_usd: float
    requests: int
    input_tokens: int
    output_tokens: int
    by_model: Mapping[str, float]
    """Model → cost in USD."""

    def record(self) -> dict[str, Any]:
        return {
            "cost_usd": self.cost_usd,
            "requests": self.requests,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "by_model": dict(self.by_model),
        }


@slot_init
@dataclass(frozen=True, slots=True)
class ModelPerformance:
    """One model's record on one route over the performance window."""

    requests: int
    success_rate: float
    mean_latency_ms: float
    cost_usd: float
    input_tokens: int
    output_tokens: int

    def record(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "success_rate": self.success_rate,
            "mean_latency_ms": self.mean_latency_ms,
            "cost_usd": self.cost_usd,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
        }


@slot_init
@dataclass(frozen=True, slots=True)
class LlmUsage:
    """LLM spend and performance, as the ``cost://llm`` resource reports them.

    ``month`` is "YYYY-MM" (UTC); the forecast extrapolates the month to date
    linearly over the time elapsed (at least an hour).
    """

    month: str
    window_days: int
    month_to_date_usd: float
    forecast_month_end_usd: float
    requests_month_to_date: int
    by_model: Mapping[str, ModelSpend]
    by_route: Mapping[str, RouteUsage]
    performance: Mapping[str, Mapping[str, ModelPerformance]]
    """Route → model → record over the last ``window_days``."""
    unpriced: Mapping[str, ModelSpend] = field(default_factory=dict)
    """Model as recorded → this month's spend, for models no configured price matches
    (counted in ``by_model`` and the month's total too)."""

    def record(self, out: dict[str, Any]) -> None:
        out["month"] = self.month
        out["window_days"] = self.window_days
        out["by_model"] = {
            m: {"cost_usd": s.cost_usd, "requests": s.requests} for m, s in self.by_model.items()
        }
        out["by_route"] = {r: u.record() for r, u in self.by_route.items()}
        out["performance"] = {
            route: {model: p.record() for model, p in models.items()}
            for route, models in self.performance.items()
        }
        if self.unpriced:  # absent when empty: records made before it read the same
            out["unpriced"] = {
                m: {"cost_usd": s.cost_usd, "requests": s.requests}
                for m, s in self.unpriced.items()
            }


@dataclass(frozen=True, slots=True)
class CloudSpend:
    """A cloud bill this month (``cost://aws``), from the provider's cost API."""

    month_to_date_usd: float
    forecast_month_end_usd: float
