"""The scaling policy: HPA-style replica decisions, schedule-aware and priced.

Called by the reconciler once per tick, like every `Policy`. For each service
in the snapshot that a rule matches (first match wins, by URI glob), it
recomputes the HorizontalPodAutoscaler's recommendation (`jarvis.policies.hpa`)
from the current metrics and, for the stabilisation window and the rate-limit
period, from the snapshots in `History`. Bounds come from the rule, its
schedule (`jarvis.policies.schedule`) and the provider's own min/max. Missing
or stale metrics give a `Note` and no decision, never a scale to zero.

The composition root builds it with `ScalingPolicy.from_config`, passing
``settings.scaling.model_dump()``; the policy never imports the settings.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from jarvis.model import Action, ActionKind, History, ResourceState, Snapshot
from jarvis.policies.base import Evaluation, Note
from jarvis.policies.hpa import (
    MetricTargets,
    RateLimits,
    missing,
    rate_limit,
    recommend,
    stabilize,
)
from jarvis.policies.schedule import Schedule, ScheduleWindow, parse_days, parse_time

#: Scaling yields to a rollback (100) and to a restart (heal: 10-20): resizing a
#: crashed or broken service does not mend it.
SCALING_PRIORITY = 5


@dataclass(frozen=True, slots=True)
class ScalingRule:
    """How the services whose URI matches ``match`` are scaled."""

    match: str
    targets: MetricTargets
    min_replicas: int = 1
    max_replicas: int = 10
    price_per_replica_hour: float | None = None
    schedule: Schedule = field(default_factory=Schedule)

    def __post_init__(self) -> None:
        if not 1 <= self.min_replicas <= self.max_replicas:
            raise ValueError(
                f"rule {self.match!r}: need 1 <= min_replicas <= max_replicas, "
                f"got {self.min_replicas} and {self.max_replicas}"
            )
        if self.price_per_replica_hour is not None and self.price_per_replica_hour < 0:
            raise ValueError(f"rule {self.match!r}: price_per_replica_hour must not be negative")
        for window in self.schedule.windows:
            low, high = self._window_bounds(window)
            if not 1 <= low <= high:
                raise ValueError(
                    f"rule {self.match!r}: window {window.describe()} gives bounds {low}-{high}"
                )

    def matches(self, uri: str) -> bool:
        return fnmatch.fnmatchcase(uri, self.match)

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


class ScalingPolicy:
    """Proposes SCALE actions the way a HorizontalPodAutoscaler would, one per service."""

    def __init__(
        self,
        rules: Sequence[ScalingRule],
        *,
        tolerance: float = 0.1,
        stabilization_seconds: float = 300.0,
        limits: RateLimits | None = None,
        metric_max_age_seconds: float = 120.0,
        priority: int = SCALING_PRIORITY,
        name: str = "scaling",
    ) -> None:
        if not 0 <= tolerance < 1:
            raise ValueError("tolerance must be in [0, 1)")
        if stabilization_seconds < 0 or metric_max_age_seconds <= 0:
            raise ValueError("stabilization_seconds >= 0 and metric_max_age_seconds > 0")
        self._rules = tuple(rules)
        self._tolerance = tolerance
        self._window = timedelta(seconds=stabilization_seconds)
        self._limits = limits or RateLimits()
        self._max_age = timedelta(seconds=metric_max_age_seconds)
        self._priority = priority
        self._name = name
        # Past snapshots never change, so each one's recommendations are computed
        # once: {id(snapshot): (snapshot, {uri: replicas or None})}. Holding the
        # snapshot keeps its id from being reused. A memo, not state: the
        # policy's answers are the same with or without it.
        self._past: dict[int, tuple[Snapshot, dict[str, int | None]]] = {}

    @property
    def name(self) -> str:
        return self._name

    @property
    def rules(self) -> tuple[ScalingRule, ...]:
        return self._rules

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> ScalingPolicy:
        """Build from ``ScalingSettings.model_dump()`` (or the same keys as plain data)."""
        return _from_config(config)

    def evaluate(self, snapshot: Snapshot, history: History, now: datetime) -> Evaluation:
        kept = {id(past) for past in history.snapshots}
        for stale in [key for key in self._past if key not in kept]:
            del self._past[stale]
        actions: list[Action] = []
        notes: list[Note] = []
        for uri in sorted(snapshot.resources):
            state = snapshot.resources[uri]
            rule = next((rule for rule in self._rules if rule.matches(uri)), None)
            if rule is None or state.replicas is None:
                continue
            result = self._decide(
                uri, state, current=state.replicas.desired, rule=rule, history=history, now=now
            )
            if isinstance(result, Action):
                actions.append(result)
            elif isinstance(result, Note):
                notes.append(result)
        return Evaluation(actions=tuple(actions), notes=tuple(notes))

    def _decide(
        self,
        uri: str,
        state: ResourceState,
        *,
        current: int,
        rule: ScalingRule,
        history: History,
        now: datetime,
    ) -> Action | Note | None:
        if current <= 0:
            return self._note(uri, "paused", f"{uri}: scaled to 0 outside Jarvis; not scaling it")
        low, high, bounds_text = self._bounds(state, rule, now)
        if low > high:
            return self._note(uri, "bounds", f"{uri}: no replica count fits {bounds_text}")
        problem = self._metric_problem(state, rule, now)
        if problem is not None:
            return self._note(uri, "metrics", f"{uri}: no scaling decision: {problem}")

        rec = recommend(current, state.metrics, rule.targets, self._tolerance)
        steps = [rec.explanation]
        window, covered = self._window_recommendations(uri, rule, history, now)
        desired = stabilize(current, rec.replicas, window)
        window_text = f"{self._window.total_seconds():g} s"
        if desired > rec.replicas:
            steps.append(f"held at {desired}, the highest recommendation of the last {window_text}")
        if desired < current and not covered:
            desired = current
            steps.append(f"no scale-down until history covers the {window_text} window")
        up_base, down_base = self._period_bases(uri, history, now, current)
        limited = rate_limit(current, desired, up_base, down_base, self._limits)
        if limited != desired:
            period = f"{self._limits.period_seconds:g} s"
            steps.append(f"rate limit caps {desired} at {limited} per {period}")
        final = min(max(limited, low), high)
        moved = f" move {limited} to {final}" if final != limited else ""
        steps.append(f"bounds {bounds_text}{moved}")
        if final == current:
            return None
        return self._action(state, rule, current, final, steps)

    def _action(
        self, state: ResourceState, rule: ScalingRule, current: int, final: int, steps: list[str]
    ) -> Action:
        price = rule.price_per_replica_hour
        cost = None if price is None else (final - current) * price
        cost_text = "cost unknown (no price_per_replica_hour)"
        if cost is not None:
            cost_text = f"cost {cost:+.4g} $/h"
        reason = f"scale {current} → {final}: " + "; ".join([*steps, cost_text])
        return Action(
            kind=ActionKind.SCALE,
            target=state.ref,
            policy=self._name,
            reason=reason,
            replicas=final,
            cost_delta_per_hour=cost,
            priority=self._priority,
        )

    def _bounds(
        self, state: ResourceState, rule: ScalingRule, now: datetime
    ) -> tuple[int, int, str]:
        low, high, window = rule.bounds(now)
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
        return low, high, text

    def _metric_problem(self, state: ResourceState, rule: ScalingRule, at: datetime) -> str | None:
        gone = missing(state.metrics, rule.targets)
        if gone:
            return f"missing metrics {', '.join(gone)}"
        age = at - state.observed_at
        if age > self._max_age:
            return (
                f"metrics are stale: observed {age.total_seconds():.0f} s ago "
                f"(limit {self._max_age.total_seconds():g} s)"
            )
        return None

    def _window_recommendations(
        self, uri: str, rule: ScalingRule, history: History, now: datetime
    ) -> tuple[list[int], bool]:
        """Recommendations recomputed from the window's snapshots; whether history covers it."""
        cutoff = now - self._window
        recommendations: list[int] = []
        covered = False
        for past in history.snapshots:
            state = past.resources.get(uri)
            if state is None or past.taken_at > now:
                continue
            covered = covered or past.taken_at <= cutoff
            replicas = state.replicas
            if past.taken_at < cutoff or replicas is None or replicas.desired <= 0:
                continue
            memo = self._past.setdefault(id(past), (past, {}))[1]
            if uri not in memo:
                memo[uri] = None
                if self._metric_problem(state, rule, past.taken_at) is None:
                    rec = recommend(replicas.desired, state.metrics, rule.targets, self._tolerance)
                    memo[uri] = rec.replicas
            replicas_then = memo[uri]
            if replicas_then is not None:
                recommendations.append(replicas_then)
        return recommendations, covered or not self._window

    def _period_bases(
        self, uri: str, history: History, now: datetime, current: int
    ) -> tuple[int, int]:
        """The lowest and highest desired count seen in the rate-limit period."""
        start = now - timedelta(seconds=self._limits.period_seconds)
        counts = [current]
        for past in history.snapshots:
            state = past.resources.get(uri)
            if state is not None and state.replicas is not None and start < past.taken_at <= now:
                counts.append(state.replicas.desired)
        return min(counts), max(counts)

    def _note(self, uri: str, why: str, message: str) -> Note:
        return Note(message=message, resource=uri, key=f"{self._name}:{why}:{uri}")


def _from_config(config: Mapping[str, Any]) -> ScalingPolicy:
    known = {
        "enabled", "tolerance", "stabilization_seconds", "rate_period_seconds",
        "scale_up_max_percent", "scale_up_max_replicas", "scale_down_max_percent",
        "scale_down_max_replicas", "metric_max_age_seconds", "rules",
    }  # fmt: skip
    unknown = set(config) - known
    if unknown:
        raise ValueError(f"unknown scaling settings: {sorted(unknown)}")
    limits = RateLimits(
        period_seconds=config.get("rate_period_seconds", 60.0),
        up_percent=config.get("scale_up_max_percent", 100.0),
        up_replicas=config.get("scale_up_max_replicas", 4),
        down_percent=config.get("scale_down_max_percent", 100.0),
        down_replicas=config.get("scale_down_max_replicas"),
    )
    return ScalingPolicy(
        [_rule(raw) for raw in config.get("rules", ())],
        tolerance=config.get("tolerance", 0.1),
        stabilization_seconds=config.get("stabilization_seconds", 300.0),
        limits=limits,
        metric_max_age_seconds=config.get("metric_max_age_seconds", 120.0),
    )


def _rule(raw: Mapping[str, Any]) -> ScalingRule:
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
        schedule=Schedule(timezone=raw.get("timezone", "UTC"), windows=windows),
    )
