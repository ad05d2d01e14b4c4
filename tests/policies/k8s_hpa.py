"""An oracle for the scaling policy: Kubernetes' HPA controller, step by step, in Python.

Follows ``pkg/controller/podautoscaler/horizontal.go`` (``normalizeDesiredReplicasWithBehaviors``,
``stabilizeRecommendationWithBehaviors``, ``convertDesiredReplicasWithBehaviorRate``,
``calculateScaleUpLimitWithScalingRules``, ``calculateScaleDownLimitWithBehaviors``,
``getReplicasChangePerPeriod``, ``storeScaleEvent``) the way the controller runs: a list
of timestamped recommendations and of scale-up and scale-down events kept between syncs,
``time.After`` for every window. It shares no code with `jarvis.policies`, so a
disagreement is a finding, not an echo.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

Select = Literal["max", "min", "disabled"]


@dataclass(frozen=True)
class Policy:
    type: Literal["pods", "percent"]
    value: int
    period_seconds: int


@dataclass(frozen=True)
class Rules:
    stabilization_window_seconds: int
    select_policy: Select
    policies: tuple[Policy, ...]


@dataclass
class Hpa:
    """One HorizontalPodAutoscaler with ``behavior`` set, and the controller's memory of it."""

    min_replicas: int
    max_replicas: int
    scale_up: Rules
    scale_down: Rules
    tolerance: float = 0.1
    target_per_pod: float = 100.0
    recommendations: list[tuple[int, datetime]] = field(default_factory=list)
    up_events: list[tuple[int, datetime]] = field(default_factory=list)
    down_events: list[tuple[int, datetime]] = field(default_factory=list)

    def sync(self, now: datetime, current: int, total: float) -> int:
        """One reconcile: the replica count the controller sets (``current`` if none)."""
        if current > self.max_replicas:
            desired = self.max_replicas
        elif current < self.min_replicas:
            desired = self.min_replicas
        else:
            desired = self.normalize(now, current, self.replica_count(current, total))
        if desired != current:
            self.store_scale_event(now, current, desired)
        return desired

    def replica_count(self, current: int, total: float) -> int:
        """GetExternalPerPodMetricReplicas: the total over an AverageValue target.

        The band is ``Tolerances.isWithin`` (``replica_calculator.go`` since the
        tolerance became configurable, Kubernetes 1.33); before it, ``math.Abs(1.0 -
        usageRatio) <= tolerance``, which differs where float noise sits on the edge:
        220 over 2 replicas of 100 is a ratio of 1.1, inside the band, 0.10000000000000009
        from 1.
        """
        usage_ratio = total / (self.target_per_pod * current)
        if 1.0 - self.tolerance <= usage_ratio <= 1.0 + self.tolerance:
            return current
        return math.ceil(total / self.target_per_pod)

    def normalize(self, now: datetime, current: int, desired: int) -> int:
        stabilized = self.stabilize(now, current, desired)
        return self.convert(now, current, stabilized)

    def stabilize(self, now: datetime, current: int, desired: int) -> int:
        up_recommendation = desired
        up_cutoff = now - timedelta(seconds=self.scale_up.stabilization_window_seconds)
        down_recommendation = desired
        down_cutoff = now - timedelta(seconds=self.scale_down.stabilization_window_seconds)
        for rec, at in self.recommendations:
            if at > up_cutoff:  # rec.timestamp.After(upCutoff)
                up_recommendation = min(rec, up_recommendation)
            if at > down_cutoff:
                down_recommendation = max(rec, down_recommendation)
        recommendation = current
        recommendation = max(recommendation, up_recommendation)
        recommendation = min(recommendation, down_recommendation)
        self.recommendations.append((desired, now))
        return recommendation

    def convert(self, now: datetime, current: int, desired: int) -> int:
        if desired > current:
            limit = self.scale_up_limit(now, current)
            limit = max(limit, current)
            maximum_allowed = min(self.max_replicas, limit)
            return min(desired, maximum_allowed)
        if desired < current:
            limit = self.scale_down_limit(now, current)
            limit = min(limit, current)
            minimum_allowed = max(self.min_replicas, limit)
            return max(desired, minimum_allowed)
        return desired

    def change_in_period(
        self, now: datetime, period: int, events: list[tuple[int, datetime]]
    ) -> int:
        cutoff = now - timedelta(seconds=period)
        return sum(change for change, at in events if at > cutoff)

    def scale_up_limit(self, now: datetime, current: int) -> int:
        rules = self.scale_up
        if rules.select_policy == "disabled":
            return current
        pick = min if rules.select_policy == "min" else max
        result: int | None = None
        for policy in rules.policies:
            added = self.change_in_period(now, policy.period_seconds, self.up_events)
            deleted = self.change_in_period(now, policy.period_seconds, self.down_events)
            start = current - added + deleted
            if policy.type == "pods":
                proposed = start + policy.value
            else:
                proposed = math.ceil(start * (1 + policy.value / 100))
            result = proposed if result is None else pick(result, proposed)
        assert result is not None
        return result

    def scale_down_limit(self, now: datetime, current: int) -> int:
        rules = self.scale_down
        if rules.select_policy == "disabled":
            return current
        pick = max if rules.select_policy == "min" else min
        result: int | None = None
        for policy in rules.policies:
            added = self.change_in_period(now, policy.period_seconds, self.up_events)
            deleted = self.change_in_period(now, policy.period_seconds, self.down_events)
            start = current - added + deleted
            if policy.type == "pods":
                proposed = start - policy.value
            else:
                proposed = int(start * (1 - policy.value / 100))
            result = proposed if result is None else pick(result, proposed)
        assert result is not None
        return result

    def store_scale_event(self, now: datetime, previous: int, new: int) -> None:
        if new > previous:
            self.up_events.append((new - previous, now))
        else:
            self.down_events.append((previous - new, now))
