"""Settings for the cost policy, the LLM usage reader and the routing actuator.

`[routing]` describes the LLM routes Jarvis owns (configured weights, the
models each route may use, per-model floors) and where their weights live in
Redis; the routing actuator reads it. `[cost]` holds the monthly budget, its
thresholds, model prices and the performance-based selection rules; the cost
policy and the `llm_usage` actuator read it. The composition root hands both
sections to `CostPolicy.from_settings`. No SDK is imported here.
"""

from __future__ import annotations

import math
from typing import Annotated, Self

from pydantic import AfterValidator, Field, model_validator

from jarvis.config.sections import Section
from jarvis.config.urls import DatabaseUrl, RedisUrl
from jarvis.model import WEIGHT_TOLERANCE

Share = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
RouteName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")]


def _model_name(name: str) -> str:
    # A route's hash keeps its own fields (``_version``, ``_updated_at``) beside
    # the models, under names that start with "_": a model named so overwrote
    # them when seeded, every reader skipped it as metadata, and every weight
    # for it was refused, so its route never got weights.
    if not name or name.startswith("_"):
        raise ValueError(f"model name {name!r} must not be empty or start with '_'")
    return name


ModelName = Annotated[str, AfterValidator(_model_name)]
"""A model a route may use: not empty, not named like the route hash's own fields."""


class ModelPrice(Section):
    """What one model costs, in USD per 1,000 tokens."""

    input_per_1k: Annotated[float, Field(ge=0, allow_inf_nan=False)]
    output_per_1k: Annotated[float, Field(ge=0, allow_inf_nan=False)]


class RouteSettings(Section):
    """One LLM route: its configured weights, extra allowed models and floors.

    ``weights`` are what Jarvis seeds and restores at the start of a month;
    they must sum to 1. ``allowed`` names models the route may be moved to
    even though they carry no configured weight. ``floors`` are minimum
    shares no budget or performance rule may go below (``code`` keeps at
    least half its traffic on its preferred model: ``floors = {claude = 0.5}``).
    """

    weights: Annotated[dict[ModelName, Share], Field(min_length=1)]
    allowed: list[ModelName] = Field(default_factory=list)
    floors: dict[str, Share] = Field(default_factory=dict)

    @property
    def models(self) -> tuple[str, ...]:
        """Every model the route may use: the weighted ones, then the extra allowed ones."""
        extra = [model for model in self.allowed if model not in self.weights]
        return (*self.weights, *dict.fromkeys(extra))

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        total = math.fsum(self.weights.values())
        if abs(total - 1) > WEIGHT_TOLERANCE:
            raise ValueError(f"weights must sum to 1, not {total:g}")
        unknown = sorted(set(self.floors) - set(self.models))
        if unknown:
            raise ValueError(f"floors name models the route does not allow: {unknown}")
        if math.fsum(self.floors.values()) > 1 + WEIGHT_TOLERANCE:
            raise ValueError("floors must not sum to more than 1")
        broken = sorted(
            model
            for model, floor in self.floors.items()
            if self.weights.get(model, 0.0) < floor - WEIGHT_TOLERANCE
        )
        if broken:
            raise ValueError(f"configured weights are below their floors for {broken}")
        return self


class RoutingSettings(Section):
    """The routing actuator: LLM traffic weights kept in Redis, one hash per route."""

    enabled: bool = False
    redis_url: RedisUrl = None
    """Where the weights live; None means the root ``redis_url``."""
    key_prefix: Annotated[str, Field(min_length=1)] = "jarvis:route:"
    """A route's hash is ``<key_prefix><route>``; `jarvis.routing.client` must agree."""
    routes: dict[RouteName, RouteSettings] = Field(default_factory=dict)


class PerformanceSettings(Section):
    """Performance-based selection: per route, favour the best model for its cost.

    Over the last ``window_days`` of `llm_usage`, a model with at least
    ``min_requests`` requests is *eligible* when its success rate is at least
    ``min_success_rate`` and within ``success_tolerance`` of the route's best.
    Among the eligible, the one with the highest success rate per
    (dollar per request x second of latency) wins if it beats the runner-up
    by ``score_margin``; ``shift`` of every other model's weight then moves to
    it (floors respected).
    """

    enabled: bool = True
    window_days: Annotated[int, Field(ge=1, le=90)] = 7
    min_requests: Annotated[int, Field(ge=1)] = 100
    min_success_rate: Share = 0.9
    success_tolerance: Share = 0.02
    score_margin: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.1
    shift: Share = 0.25


class CostSettings(Section):
    """The monthly LLM (and cloud) budget and what happens as it is used up.

    Thresholds are fractions of ``monthly_budget_usd`` reached by the
    month-to-date spend (UTC calendar month): ``alert_at`` raises an alert,
    ``shift_at`` moves ``shift_share`` of each route's most expensive model's
    traffic to its cheapest allowed model, ``cheapest_at`` sends everything
    the floors allow to the cheapest model.
    """

    enabled: bool = False
    monthly_budget_usd: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 500.0
    alert_at: Share = 0.8
    shift_at: Share = 0.9
    cheapest_at: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 1.0
    shift_share: Share = 0.5
    include_cloud_spend: bool = True
    """Add ``cost://aws`` month-to-date spend (from the AWS actuator) to the LLM spend."""
    min_change: Share = 0.01
    """Smallest traffic share worth moving; smaller differences are left alone."""
    prices: dict[str, ModelPrice] = Field(default_factory=dict)
    performance: PerformanceSettings = PerformanceSettings()
    usage_database_url: DatabaseUrl | None = None
    """Where `llm_usage` lives, if not in Jarvis's own database."""

    @model_validator(mode="after")
    def _ordered_thresholds(self) -> Self:
        if not self.alert_at <= self.shift_at <= self.cheapest_at:
            raise ValueError("thresholds must satisfy alert_at <= shift_at <= cheapest_at")
        return self
