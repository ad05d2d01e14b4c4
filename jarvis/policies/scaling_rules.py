"""Scaling rules: which services a rule covers, its bounds at a time, and reading one.

Used by the scaling policy (`jarvis.policies.scaling`): it picks the first
`ScalingRule` whose URI glob matches a service, asks it for its replica bounds
at ``now`` (its schedule, `jarvis.policies.schedule`, may set them) and writes
them into a reason with `bounds_text`; `ScalingPolicy.from_config` reads each
rule from plain settings data with `parse_rule`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from jarvis.model import ResourceState, globs
from jarvis.policies.hpa import MetricTargets
from jarvis.policies.schedule import Schedule, ScheduleWindow, parse_days, parse_time

__all__ = ["ScalingRule", "bounds_text", "parse_rule"]


@dataclass(frozen=True, slots=True)
class ScalingRule:
    """How the services whose URI matches ``match`` are scaled.

    ``match`` is a glob over the whole URI (``ecs://prod/*``), `jarvis.model.globs`: its
    ``*`` crosses ``/``.
    """

    match: str
    targets: MetricTargets
    min_replicas: int = 1
    max_replicas: int = 10
    price_per_replica_hour: float | None = None
    schedule: Schedule = field(default_factory=Schedule)
    cooldown_seconds: float = 300.0
    """With ``min_replicas = 0``: requests idle this long scale the service to zero."""
    activation_requests_per_minute: float = 0.0
    """With ``min_replicas = 0``: more requests per minute than this are activity."""

    def __post_init__(self) -> None:
        if not 0 <= self.min_replicas <= self.max_replicas or self.max_replicas < 1:
            raise ValueError(
                f"rule {self.match!r}: need 0 <= min_replicas <= max_replicas and "
                f"max_replicas >= 1, got {self.min_replicas} and {self.max_replicas}"
            )
        if self.scales_to_zero and self.targets.requests_per_minute is None:
            raise ValueError(
                f"rule {self.match!r}: min_replicas = 0 needs target_requests_per_minute, "
                "the activity that wakes the service"
            )
        if self.price_per_replica_hour is not None and self.price_per_replica_hour < 0:
            raise ValueError(f"rule {self.match!r}: price_per_replica_hour must not be negative")
        for window in self.schedule.windows:
            low, high = self._window_bounds(window)
            if not 0 <= low <= high or high < 1:
                raise ValueError(
                    f"rule {self.match!r}: window {window.describe()} gives bounds {low}-{high}"
                )

    @property
    def scales_to_zero(self) -> bool:
        """Whether the rule opts in to scale to zero and back (``min_replicas = 0``)."""
        return self.min_replicas == 0

    def matches(self, uri: str) -> bool:
        return globs.matches(uri, self.match)

    def bounds(self, now: datetime) -> tuple[int, int, ScheduleWindow | None]:
        """The rule's min and max at ``now``, and the schedule window that set them."""
        window = self.schedule.active(now)
        if window is None:
            return self.min_replicas, self.max_replicas, None
        low, high = self._window_bounds(window)
        return low, high, window

    def _window_bounds(self, window: ScheduleWindow) -> tuple[int, int]:
        low = self.min_replicas if window.min_replicas is None else window.min_replicas
        high = self.max_replicas if window.max_replicas is None else window.max_replicas
        return low, high


def bounds_text(
    state: ResourceState,
    rule: ScalingRule,
    rule_bounds: tuple[int, int, ScheduleWindow | None],
) -> str:
    """The bounds as an operator reads them: rule or schedule, then the provider's."""
    low, high, window = rule_bounds
    text = f"{low}-{high}"
    if window is not None:
        text += f" (schedule {window.describe()} {rule.schedule.timezone})"
    replicas = state.replicas
    if replicas is not None and (replicas.min is not None or replicas.max is not None):
        if replicas.min is not None:
            low = max(low, replicas.min)
        if replicas.max is not None:
            high = min(high, replicas.max)
        text += f" ∩ provider {replicas.min}-{replicas.max} = {low}-{high}"
    return text


def parse_rule(raw: Mapping[str, Any]) -> ScalingRule:
    windows = tuple(
        ScheduleWindow(
            start=parse_time(window["start"]),
            end=parse_time(window["end"]),
            min_replicas=window.get("min_replicas"),
            max_replicas=window.get("max_replicas"),
            days=parse_days(window.get("days") or ()),
        )
        for window in raw.get("schedule", ())
    )
    return ScalingRule(
        match=raw.get("match", "*"),
        targets=MetricTargets(
            cpu_utilization=raw.get("target_cpu_utilization"),
            requests_per_minute=raw.get("target_requests_per_minute"),
            p95_latency_ms=raw.get("latency_slo_ms"),
        ),
        min_replicas=raw.get("min_replicas", 1),
        max_replicas=raw.get("max_replicas", 10),
        price_per_replica_hour=raw.get("price_per_replica_hour"),
        cooldown_seconds=raw.get("cooldown_seconds", 300.0),
        activation_requests_per_minute=raw.get("activation_requests_per_minute", 0.0),
        schedule=Schedule(timezone=raw.get("timezone", "UTC"), windows=windows),
    )
