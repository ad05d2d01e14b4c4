"""The HPA's ``behavior``: stabilization windows and rate policies, as Kubernetes computes them.

Used by the scaling policy (`jarvis.policies.scaling`) after the recommendation
(`jarvis.policies.hpa`). Each function mirrors one in Kubernetes'
``pkg/controller/podautoscaler/horizontal.go``, so its numbers can be checked
against it:

- `stabilize` is ``stabilizeRecommendationWithBehaviors``: the count moves up
  only to the lowest recommendation of the scale-up window and down only to the
  highest of the scale-down window (the current recommendation included). A
  recommendation counts while ``timestamp.After(now - window)``: one made exactly
  one window ago is outside.
- `period_start` is the replica count at the start of a rate policy's period:
  the current count less every scale event after ``now - period`` (up and down
  events both, as Kubernetes counts them since 1.24).
- `scale_up_limit` / `scale_down_limit` are ``calculateScaleUpLimitWithScalingRules``
  and ``calculateScaleDownLimitWithBehaviors``: each policy proposes a limit from
  its own period's start (``Pods``: start ± value; ``Percent``: up rounded up,
  down truncated), and ``selectPolicy`` picks the largest change (``Max``), the
  smallest (``Min``), or none at all (``Disabled``).
- `rate_limit` is ``convertDesiredReplicasWithBehaviorRate`` without the
  min/max bounds, which the policy applies after it.

Pure: times are passed in.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

__all__ = [
    "Behavior",
    "PolicyType",
    "RatePolicy",
    "ScaleEvent",
    "ScalingRules",
    "SelectPolicy",
    "period_start",
    "rate_limit",
    "scale_down_limit",
    "scale_up_limit",
    "stabilize",
]


class PolicyType(enum.StrEnum):
    PODS = "pods"
    PERCENT = "percent"


class SelectPolicy(enum.StrEnum):
    MAX = "max"
    """The policy allowing the largest change wins (the Kubernetes default)."""
    MIN = "min"
    """The policy allowing the smallest change wins."""
    DISABLED = "disabled"
    """No scaling in this direction at all."""


@dataclass(frozen=True, slots=True)
class RatePolicy:
    """At most ``value`` replicas (or percent) of change per ``period_seconds``."""

    type: PolicyType
    value: float
    period_seconds: float

    def __post_init__(self) -> None:
        if self.value < 0 or (self.type is PolicyType.PODS and self.value != int(self.value)):
            raise ValueError(f"a {self.type} policy needs a non-negative whole value")
        if not self.period_seconds > 0:
            raise ValueError("a rate policy's period must be positive")


@dataclass(frozen=True, slots=True)
class ScalingRules:
    """One direction's rules (Kubernetes' ``HPAScalingRules``)."""

    stabilization_seconds: float = 0.0
    select: SelectPolicy = SelectPolicy.MAX
    policies: tuple[RatePolicy, ...] = ()

    def __post_init__(self) -> None:
        if self.stabilization_seconds < 0:
            raise ValueError("a stabilization window must not be negative")
        if not self.policies and self.select is not SelectPolicy.DISABLED:
            raise ValueError("scaling rules need at least one rate policy unless disabled")

    @property
    def window(self) -> timedelta:
        return timedelta(seconds=self.stabilization_seconds)

    def describe(self, sign: str) -> str:
        """The policies as an operator reads them, ``sign`` being ``+`` or ``-``."""
        if self.select is SelectPolicy.DISABLED:
            return "scaling disabled"
        parts = [
            f"{sign}{p.value:g}{'%' if p.type is PolicyType.PERCENT else ''} "
            f"per {p.period_seconds:g} s"
            for p in self.policies
        ]
        return parts[0] if len(parts) == 1 else f"{self.select} of {', '.join(parts)}"

    @property
    def longest_period(self) -> timedelta:
        return timedelta(seconds=max((p.period_seconds for p in self.policies), default=0.0))


def _default_up() -> ScalingRules:
    # Kubernetes' default scale-up: no window; max(+100 %, +4 pods) per 15 s.
    return ScalingRules(
        0.0,
        SelectPolicy.MAX,
        (RatePolicy(PolicyType.PERCENT, 100, 15), RatePolicy(PolicyType.PODS, 4, 15)),
    )


def _default_down() -> ScalingRules:
    # Kubernetes' default scale-down: a 300 s window; -100 % per 15 s.
    return ScalingRules(300.0, SelectPolicy.MAX, (RatePolicy(PolicyType.PERCENT, 100, 15),))


@dataclass(frozen=True, slots=True)
class Behavior:
    """Both directions (Kubernetes' ``HorizontalPodAutoscalerBehavior``)."""

    scale_up: ScalingRules = field(default_factory=_default_up)
    scale_down: ScalingRules = field(default_factory=_default_down)

    @property
    def longest_window(self) -> timedelta:
        return max(self.scale_up.window, self.scale_down.window)

    @property
    def longest_period(self) -> timedelta:
        return max(self.scale_up.longest_period, self.scale_down.longest_period)


@dataclass(frozen=True, slots=True)
class ScaleEvent:
    """A change of the replica count at ``at``: positive up, negative down."""

    at: datetime
    change: int


def stabilize(
    current: int, recommendation: int, up_window: Iterable[int], down_window: Iterable[int]
) -> int:
    """``current`` moved towards ``recommendation`` no further than both windows allow.

    ``up_window`` and ``down_window`` are the recommendations made inside each
    window (after ``now - window``), not counting ``recommendation`` itself.
    """
    up = min([recommendation, *up_window])
    down = max([recommendation, *down_window])
    # Up no further than the lowest recent recommendation, down no further than the highest.
    return min(max(current, up), down)


def period_start(current: int, events: Sequence[ScaleEvent], period: float, now: datetime) -> int:
    """The count when the period began: ``current`` less every change after ``now - period``."""
    cutoff = now - timedelta(seconds=period)
    return current - sum(e.change for e in events if e.at > cutoff)


def scale_up_limit(
    current: int, events: Sequence[ScaleEvent], rules: ScalingRules, now: datetime
) -> int:
    """The most replicas the scale-up policies allow now."""
    if rules.select is SelectPolicy.DISABLED:
        return current
    proposals = []
    for policy in rules.policies:
        start = period_start(current, events, policy.period_seconds, now)
        if policy.type is PolicyType.PODS:
            proposals.append(start + int(policy.value))
        else:
            # Rounded up, or a small percentage of a small count would never scale up;
            # float for float as Kubernetes: 25 x 1.12 is 28.000000000000004, so 29.
            proposals.append(math.ceil(start * (1 + policy.value / 100)))
    return max(proposals) if rules.select is SelectPolicy.MAX else min(proposals)


def scale_down_limit(
    current: int, events: Sequence[ScaleEvent], rules: ScalingRules, now: datetime
) -> int:
    """The fewest replicas the scale-down policies allow now."""
    if rules.select is SelectPolicy.DISABLED:
        return current
    proposals = []
    for policy in rules.policies:
        start = period_start(current, events, policy.period_seconds, now)
        if policy.type is PolicyType.PODS:
            proposals.append(start - int(policy.value))
        else:
            # Truncated, as Kubernetes' int32() conversion does.
            proposals.append(int(start * (1 - policy.value / 100)))
    # The largest change down is the lowest count.
    return min(proposals) if rules.select is SelectPolicy.MAX else max(proposals)


def rate_limit(current: int, desired: int, up_limit: int, down_limit: int) -> int:
    """``desired`` held within the limits; a limit past ``current`` holds at ``current``."""
    if desired > current:
        return min(desired, max(up_limit, current))
    if desired < current:
        return max(desired, min(down_limit, current))
    return desired
