"""The arithmetic of Kubernetes' HorizontalPodAutoscaler, as pure functions.

Used by the scaling policy (`jarvis.policies.scaling`), which feeds it one
resource's metrics and the recommendations it recomputes from history. Kept
apart so operators can check the numbers against the HPA documentation:
desired = ceil(current x metric / target), no change inside the tolerance,
the largest recommendation across metrics. What Kubernetes does with the
recommendation next (stabilization windows, rate policies, ``selectPolicy``)
is `jarvis.policies.hpa_behavior`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from jarvis.model import Metric
from jarvis.policies.base import usable_reading

CPU = Metric.CPU_UTILIZATION
RPM = Metric.REQUESTS_PER_MINUTE
P95 = Metric.P95_LATENCY_MS

MOST_REPLICAS = 2**31 - 1
"""The most a recommendation asks for: Kubernetes keeps replica counts in an int32."""


@dataclass(frozen=True, slots=True)
class MetricTargets:
    """What one replica should carry; ``None`` leaves a metric out of the decision.

    ``cpu_utilization`` is a percentage (0-100) averaged over replicas;
    ``requests_per_minute`` is per replica, compared with the service's total;
    ``p95_latency_ms`` is the latency SLO.
    """

    cpu_utilization: float | None = None
    requests_per_minute: float | None = None
    p95_latency_ms: float | None = None

    def __post_init__(self) -> None:
        targets = self.configured()
        if not targets:
            raise ValueError("a scaling rule needs at least one metric target")
        for name, target in targets.items():
            if not target > 0:
                raise ValueError(f"the {name} target must be positive, got {target}")

    def configured(self) -> dict[str, float]:
        """Metric name → target, for the metrics this rule scales on, in a fixed order."""
        return dict(self.pairs())

    def pairs(self) -> tuple[tuple[str, float], ...]:
        """`configured` as (name, target) pairs: what callers with a hot loop keep."""
        return tuple(
            (name, target)
            for name, target in (
                (CPU, self.cpu_utilization),
                (RPM, self.requests_per_minute),
                (P95, self.p95_latency_ms),
            )
            if target is not None
        )


@dataclass(frozen=True, slots=True)
class Recommendation:
    """The replica count the metrics ask for, and the metric that asked for the most."""

    replicas: int
    metric: str
    explanation: str


def missing(metrics: Mapping[str, float], targets: MetricTargets) -> list[str]:
    """The configured metrics absent from ``metrics`` or not a finite, non-negative number."""
    return [name for name, _ in targets.pairs() if not usable_reading(metrics.get(name))]


def all_present(metrics: Mapping[str, float], pairs: Iterable[tuple[str, float]]) -> bool:
    """Whether `missing` would find nothing, for ``pairs`` from `MetricTargets.pairs`.

    A plain loop, not ``all()`` over a generator: the scaling policy asks this
    for every service every tick.
    """
    for name, _ in pairs:
        value = metrics.get(name)
        if value is None or not (math.isfinite(value) and value >= 0):
            return False
    return True


def recommend(
    current: int, metrics: Mapping[str, float], targets: MetricTargets, tolerance: float
) -> Recommendation:
    """The HPA's recommendation for ``current`` (> 0) replicas; metrics must be present.

    Each metric proposes a count; inside the tolerance it proposes ``current``.
    The largest proposal wins, so one overloaded dimension is enough to scale up.
    """
    best: tuple[int, str, float, float] | None = None
    for name, target in targets.pairs():
        proposal, ratio = _propose(name, float(metrics[name]), target, current, tolerance)
        if best is None or proposal > best[0]:
            best = (proposal, name, ratio, target)
    if best is None:  # MetricTargets guarantees at least one target
        raise ValueError("no metric targets")
    proposal, name, ratio, target = best
    # Only the winner is described: the window's past recommendations need numbers only.
    value = float(metrics[name])
    if name == RPM:
        unit = f"{value:g}/min over {current} = {value / current:.4g}/replica vs {target:g}"
    else:
        unit = f"{value:g} vs target {target:g}"
    within = " (within tolerance)" if proposal == current and ratio != 1 else ""
    text = f"{name} {unit}: x{ratio:.2f} → {proposal}{within}"
    return Recommendation(replicas=proposal, metric=name, explanation=text)


def recommended_replicas(
    current: int,
    metrics: Mapping[str, float],
    pairs: Iterable[tuple[str, float]],
    tolerance: float,
) -> int:
    """``recommend(...).replicas`` for ``pairs`` from `MetricTargets.pairs`, without the text.

    The scaling policy asks this for every service every tick and for its
    history; the explanation is only worth building for a proposal.
    """
    best: int | None = None
    for name, target in pairs:
        proposal, _ = _propose(name, float(metrics[name]), target, current, tolerance)
        if best is None or proposal > best:
            best = proposal
    if best is None:  # MetricTargets guarantees at least one target
        raise ValueError("no metric targets")
    return best


def usable_recommendation(
    current: int,
    metrics: Mapping[str, float],
    pairs: Iterable[tuple[str, float]],
    tolerance: float,
) -> int | None:
    """`recommended_replicas` when `all_present` holds, else None, in one pass.

    The scaling policy's quiet path asks both for every service every tick.
    """
    best: int | None = None
    low, high = 1.0 - tolerance, 1.0 + tolerance
    for name, target in pairs:
        value = metrics.get(name)
        if value is None or not (math.isfinite(value) and value >= 0):
            return None
        # `_propose` written out (tests/policies/test_hpa_arithmetic.py holds the two equal):
        # this runs for every service every tick, and the call and its tuple were
        # a third of this function.
        value = float(value)
        if name == RPM:
            ratio = value / (target * current)
            raw = None if low <= ratio <= high else value / target
        else:
            ratio = value / target
            raw = None if low <= ratio <= high else ratio * current
        if raw is None:
            proposal = current
        else:
            proposal = math.ceil(raw) if raw < MOST_REPLICAS else MOST_REPLICAS
        if best is None or proposal > best:
            best = proposal
    if best is None:  # MetricTargets guarantees at least one target
        raise ValueError("no metric targets")
    return best


def _propose(
    name: str, value: float, target: float, current: int, tolerance: float
) -> tuple[int, float]:
    """One metric's count and usage ratio, float for float as ``replica_calculator.go``.

    Inside the tolerance band (``Tolerances.isWithin``: ``1 - tolerance <= ratio
    <= 1 + tolerance``) the count stays. Outside it the count is rounded up with
    nothing rounded first: where float noise lifts a product just above a whole
    count (290/70 x 7 is 29.000000000000004), Kubernetes adds the replica, and so
    does this. Requests per minute are the service's total, as an external
    metric with an ``AverageValue`` target (``GetExternalPerPodMetricReplicas``);
    the others are per replica (``GetResourceReplicas``, every pod ready).
    """
    if name == RPM:
        ratio = value / (target * current)
        if 1.0 - tolerance <= ratio <= 1.0 + tolerance:
            return current, ratio
        raw = value / target
    else:
        ratio = value / target
        if 1.0 - tolerance <= ratio <= 1.0 + tolerance:
            return current, ratio
        raw = ratio * current
    # A metric too large for a float (an infinite ratio) asks for the most, not ceil(inf).
    return (math.ceil(raw) if raw < MOST_REPLICAS else MOST_REPLICAS), ratio
