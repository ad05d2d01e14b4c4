"""What the cost policy is configured with: model prices, routes, and the settings' shape.

Used by the cost policy (`jarvis.policies.cost`): `Price` and `Route` are its
typed configuration, and `CostConfig` and `RoutingConfig` are the shapes of
`CostSettings` and `RoutingSettings` that `CostPolicy.from_settings` reads, as
Protocols so that policies never import `jarvis.config`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["CostConfig", "Price", "Route", "RoutingConfig"]


@dataclass(frozen=True, slots=True)
class Price:
    """USD per 1,000 input and output tokens."""

    input_per_1k: float
    output_per_1k: float

    def per_request(self, input_tokens: float, output_tokens: float) -> float:
        return (input_tokens * self.input_per_1k + output_tokens * self.output_per_1k) / 1000


@dataclass(frozen=True, slots=True)
class Route:
    """A route's configured weights, the models it allows (in order) and floors."""

    name: str
    weights: Mapping[str, float]
    models: tuple[str, ...]
    floors: Mapping[str, float] = field(default_factory=dict)


class _PriceConfig(Protocol):
    @property
    def input_per_1k(self) -> float: ...
    @property
    def output_per_1k(self) -> float: ...


class _RouteConfig(Protocol):
    @property
    def weights(self) -> Mapping[str, float]: ...
    @property
    def floors(self) -> Mapping[str, float]: ...
    @property
    def models(self) -> tuple[str, ...]: ...


class _PerformanceConfig(Protocol):
    @property
    def enabled(self) -> bool: ...
    @property
    def min_requests(self) -> int: ...
    @property
    def min_success_rate(self) -> float: ...
    @property
    def success_tolerance(self) -> float: ...
    @property
    def score_margin(self) -> float: ...
    @property
    def shift(self) -> float: ...


class CostConfig(Protocol):
    @property
    def monthly_budget_usd(self) -> float: ...
    @property
    def alert_at(self) -> float: ...
    @property
    def shift_at(self) -> float: ...
    @property
    def cheapest_at(self) -> float: ...
    @property
    def shift_share(self) -> float: ...
    @property
    def include_cloud_spend(self) -> bool: ...
    @property
    def min_change(self) -> float: ...

    @property
    def prices(self) -> Mapping[str, _PriceConfig]: ...
    @property
    def performance(self) -> _PerformanceConfig: ...


class RoutingConfig(Protocol):
    @property
    def routes(self) -> Mapping[str, _RouteConfig]: ...
