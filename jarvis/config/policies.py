"""Settings for the scaling and rollback policies (the ``[scaling]`` and ``[rollback]`` tables).

Read by the composition root, which hands ``settings.scaling.model_dump()`` to
`jarvis.policies.scaling.ScalingPolicy.from_config` and
``settings.rollback.model_dump()`` to `jarvis.policies.rollback.RollbackPolicy.from_config`
(config may not import policies, so the policies parse these plain dicts).
Validation here catches what an operator can get wrong in a file: bounds out
of order, unknown time zones, day names, a rule without a metric.
"""

from __future__ import annotations

import math
from datetime import time
from typing import Annotated, Literal, Self

from pydantic import AfterValidator, Field, model_validator

from jarvis.config.sections import REPLICAS_MAX, Section, TimeZone

Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
ReplicaCount = Annotated[int, Field(ge=1, le=REPLICAS_MAX)]
Step = Annotated[int, Field(ge=0, le=REPLICAS_MAX)]
"""Replicas (or percent) of one scaling step: int32, as Kubernetes' HPAScalingPolicy.value."""


def _wall_clock(value: time) -> time:
    if value.tzinfo is not None:
        raise ValueError(
            f"write a local time without an offset, not {value.isoformat()}: "
            "the timezone key says the zone"
        )
    return value


WallClock = Annotated[time, AfterValidator(_wall_clock)]
"""A local wall-clock time ("08:00") in a schedule's zone; an offset would be dropped."""


class ScheduleWindowSettings(Section):
    """From ``start`` to ``end`` local time (past midnight when end <= start), new bounds."""

    start: WallClock
    end: WallClock
    days: list[Day] = Field(default_factory=list)
    """Days on which the window starts; empty means every day."""
    min_replicas: ReplicaCount | None = None
    max_replicas: ReplicaCount | None = None

    @model_validator(mode="after")
    def _sensible(self) -> Self:
        if self.start == self.end:
            raise ValueError("start and end must differ")
        if self.min_replicas is None and self.max_replicas is None:
            raise ValueError("set min_replicas or max_replicas")
        if (
            self.min_replicas is not None
            and self.max_replicas is not None
            and self.min_replicas > self.max_replicas
        ):
            raise ValueError("min_replicas must not exceed max_replicas")
        return self


class ScalingRuleSettings(Section):
    """How services whose URI matches ``match`` (a glob, e.g. ``ecs://prod/*``) scale."""

    match: Annotated[str, Field(min_length=1)] = "*"
    min_replicas: Annotated[int, Field(ge=0, le=REPLICAS_MAX)] = 1
    """0 opts in to scale to zero and back (needs target_requests_per_minute)."""
    cooldown_seconds: Annotated[float, Field(gt=0, le=7 * 86_400)] = 300.0
    """With min_replicas = 0: idle this long (requests at or below the activation
    threshold) before scaling to zero, as KEDA's cooldownPeriod."""
    activation_requests_per_minute: Annotated[float, Field(ge=0)] = 0.0
    """With min_replicas = 0: more requests per minute than this wake it from zero."""
    max_replicas: ReplicaCount = 10
    target_cpu_utilization: Annotated[float | None, Field(gt=0, le=100)] = None
    """Percent, averaged over replicas."""
    target_requests_per_minute: Annotated[float | None, Field(gt=0)] = None
    """Per replica; compared with the service's total requests per minute."""
    latency_slo_ms: Annotated[float | None, Field(gt=0)] = None
    """p95 latency the service should stay under."""
    price_per_replica_hour: Annotated[float | None, Field(ge=0)] = None
    """USD per replica-hour, for the projected cost change of each proposal."""
    timezone: TimeZone = "UTC"
    """IANA zone the schedule's times are written in, e.g. ``Europe/Berlin``."""
    schedule: list[ScheduleWindowSettings] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.min_replicas > self.max_replicas:
            raise ValueError("min_replicas must not exceed max_replicas")
        if self.min_replicas == 0 and self.target_requests_per_minute is None:
            raise ValueError(
                "min_replicas = 0 (scale to zero) needs target_requests_per_minute, "
                "the activity that wakes the service"
            )
        if (
            self.target_cpu_utilization is None
            and self.target_requests_per_minute is None
            and self.latency_slo_ms is None
        ):
            raise ValueError(
                "set at least one of target_cpu_utilization, target_requests_per_minute, "
                "latency_slo_ms"
            )
        for window in self.schedule:
            low = window.min_replicas or self.min_replicas
            high = window.max_replicas or self.max_replicas
            if low > high:
                raise ValueError(
                    f"schedule window {window.start}-{window.end} gives min {low} > max {high}"
                )
        return self


class RatePolicySettings(Section):
    """One rate policy, as Kubernetes' ``HPAScalingPolicy``: at most ``value`` pods
    (or percent) of change per ``period_seconds``."""

    type: Literal["pods", "percent"]
    value: Annotated[float, Field(ge=0, le=REPLICAS_MAX)]
    period_seconds: Annotated[float, Field(gt=0, le=1800)] = 60.0

    @model_validator(mode="after")
    def _whole_pods(self) -> Self:
        if self.type == "pods" and self.value != int(self.value):
            raise ValueError("a pods policy's value is a whole number of replicas")
        return self


Select = Literal["max", "min", "disabled"]


class ScalingSettings(Section):
    enabled: bool = False
    tolerance: Annotated[float, Field(ge=0, lt=1)] = 0.1
    """No change while metric / target stays within 1 ± tolerance."""
    stabilization_seconds: Annotated[float, Field(ge=0, le=3600)] = 300.0
    """Scale down only to the highest recommendation of this window."""
    scale_up_stabilization_seconds: Annotated[float, Field(ge=0, le=3600)] = 0.0
    """Scale up only to the lowest recommendation of this window (0: at once, as Kubernetes)."""
    scale_up_select: Select = "max"
    scale_down_select: Select = "max"
    """Which rate policy wins: the largest change (max), the smallest (min), or no
    scaling in that direction (disabled)."""
    scale_up_policies: list[RatePolicySettings] = Field(default_factory=list)
    scale_down_policies: list[RatePolicySettings] = Field(default_factory=list)
    """Each with its own period; when set, they replace the max_percent/max_replicas
    shorthand below for that direction."""
    rate_period_seconds: Annotated[float, Field(gt=0, le=1800)] = 60.0
    scale_up_max_percent: Annotated[float, Field(ge=0, le=REPLICAS_MAX)] = 100.0
    scale_up_max_replicas: Step = 4
    """Per period, scale up by at most max(+percent, +replicas)."""
    scale_down_max_percent: Annotated[float, Field(ge=0, le=100)] = 100.0
    scale_down_max_replicas: Step | None = None
    """Per period, scale down by at most the larger of the two (100 %: no limit)."""
    metric_max_age_seconds: Annotated[float, Field(gt=0, le=86_400)] = 120.0
    """Metrics observed longer ago than this are stale: no decision."""
    rules: list[ScalingRuleSettings] = Field(default_factory=list)
    """Matched in order against each resource URI; the first match wins."""

    def history_seconds(self) -> float:
        """How far back the policy reads snapshots: its longest stabilization window,
        rate policy period (the scale events it counts) and scale-to-zero cooldown.

        The shorthand ``rate_period_seconds`` counts in a direction without its own
        policies, as `jarvis.policies.scaling_config.behavior_from_config` reads it.
        """
        policies = [*self.scale_up_policies, *self.scale_down_policies]
        spans = [self.stabilization_seconds, self.scale_up_stabilization_seconds]
        spans += [policy.period_seconds for policy in policies]
        if not self.scale_up_policies or not self.scale_down_policies:
            spans.append(self.rate_period_seconds)
        spans += [rule.cooldown_seconds for rule in self.rules if rule.min_replicas == 0]
        return max(spans)


class RollbackSettings(Section):
    enabled: bool = False
    match: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    """URI globs of the resources whose rollouts are watched."""
    watch_seconds: Annotated[float, Field(gt=0, le=86_400)] = 900.0
    """How long after a version change its health and metrics are judged."""
    ready_timeout_seconds: Annotated[float, Field(gt=0, le=86_400)] = 600.0
    """A rollout still in progress after this long never became ready: roll back."""
    consecutive_checks: Annotated[int, Field(ge=1, le=100)] = 3
    """Ticks in a row a metric must be worse than the baseline before rolling back."""
    error_rate_margin: Annotated[float, Field(ge=0, le=1)] = 0.02
    """Absolute: error rate above baseline + margin is worse (0.02 = 2 points)."""
    latency_margin: Annotated[float, Field(ge=0)] = 0.25
    """Relative: p95 latency above baseline x (1 + margin) is worse."""
    min_baseline_samples: Annotated[int, Field(ge=1, le=1000)] = 2
    """Snapshots of the previous version needed before metrics are compared."""

    def history_ticks(self, interval: float) -> int:
        """Snapshots that reach from the end of the watch window back over the
        previous version's baseline: the window's ticks, the baseline, and now."""
        return math.ceil(self.watch_seconds / interval) + self.min_baseline_samples + 1
