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

A service's rule, its bounds and their wording live in
`jarvis.policies.scaling_rules`; what one tick works out once and shares across
services, in `jarvis.policies.scaling_tick`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from jarvis.model import Action, History, ResourceState, Scale, Snapshot
from jarvis.policies.base import Evaluation, Note
from jarvis.policies.hpa import (
    RateLimits,
    all_present,
    missing,
    rate_limit,
    recommend,
    recommended_replicas,
    stabilize,
)
from jarvis.policies.scaling_rules import ScalingRule, bounds_text, parse_rule
from jarvis.policies.scaling_tick import Span, Tick
from jarvis.policies.schedule import ScheduleWindow

#: Scaling yields to a rollback (100) and to a restart (heal: 10-20): resizing a
#: crashed or broken service does not mend it.
SCALING_PRIORITY = 5


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
        # Targets as pairs once, not a dict per service per tick.
        self._pairs = tuple(rule.targets.pairs() for rule in self._rules)
        self._tolerance = tolerance
        self._window = timedelta(seconds=stabilization_seconds)
        self._limits = limits or RateLimits()
        self._period = timedelta(seconds=self._limits.period_seconds)
        self._max_age = timedelta(seconds=metric_max_age_seconds)
        self._priority = priority
        self._name = name
        # Past snapshots never change, so each one's recommendations are computed
        # once: {id(snapshot): (snapshot, {uri: replicas or None})}, filled as a
        # snapshot is decided (it is history next tick) or when a window asks.
        # Holding the snapshot keeps its id from being reused. A memo, not
        # state: the policy's answers are the same with or without it.
        self._past: dict[int, tuple[Snapshot, dict[str, int | None]]] = {}
        # The index of the first rule matching a URI (-1: none), since globbing
        # every URI every tick costs more than the rest of a quiet decision.
        # Cleared when it outgrows the fleet, so renamed services cannot grow it.
        self._rule_of: dict[str, int] = {}

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
        resources = snapshot.resources
        if len(self._rule_of) > 2 * len(resources) + 1024:
            self._rule_of.clear()
        tick = Tick(history, now)
        if now == snapshot.taken_at:
            # What this tick recommends is what later ticks would recompute for
            # this snapshot in their window (same state, same time): keep it.
            tick.recommended = self._past.setdefault(id(snapshot), (snapshot, {}))[1]
        actions: list[Action] = []
        notes: list[Note] = []
        for uri in sorted(resources):
            state = resources[uri]
            index = self._rule_of.get(uri)
            if index is None:
                index = self._rule_of[uri] = self._match(uri)
            if index < 0 or state.replicas is None:
                continue
            result = self._decide(uri, state, index, tick)
            if isinstance(result, Action):
                actions.append(result)
            elif isinstance(result, Note):
                notes.append(result)
        return Evaluation(actions=tuple(actions), notes=tuple(notes))

    def _match(self, uri: str) -> int:
        return next((i for i, rule in enumerate(self._rules) if rule.matches(uri)), -1)

    def _decide(
        self, uri: str, state: ResourceState, index: int, tick: Tick
    ) -> Action | Note | None:
        replicas = state.replicas
        if replicas is None:  # evaluate skips these; the check is for mypy
            return None
        current = replicas.desired
        if current <= 0:
            return self._note(uri, "paused", f"{uri}: scaled to 0 outside Jarvis; not scaling it")
        rule_bounds = tick.bounds.get(index)
        if rule_bounds is None:
            rule_bounds = tick.bounds[index] = self._rules[index].bounds(tick.now)
        low, high, _ = rule_bounds
        if replicas.min is not None:
            low = max(low, replicas.min)
        if replicas.max is not None:
            high = min(high, replicas.max)
        if low > high:
            text = bounds_text(state, self._rules[index], rule_bounds)
            return self._note(uri, "bounds", f"{uri}: no replica count fits {text}")
        if not self._usable(state, index, tick.now):
            tick.recommended[uri] = None
            problem = self._metric_problem(state, self._rules[index], tick.now)
            return self._note(uri, "metrics", f"{uri}: no scaling decision: {problem}")
        recommended = tick.recommended[uri] = recommended_replicas(
            current, state.metrics, self._pairs[index], self._tolerance
        )
        if recommended == current and low <= current <= high:
            return None  # the quiet case: nothing asked for, nothing to enforce
        return self._scale(
            uri,
            state,
            current=current,
            recommended=recommended,
            bounds=(low, high),
            index=index,
            rule_bounds=rule_bounds,
            tick=tick,
        )

    def _scale(
        self,
        uri: str,
        state: ResourceState,
        *,
        current: int,
        recommended: int,
        bounds: tuple[int, int],
        index: int,
        rule_bounds: tuple[int, int, ScheduleWindow | None],
        tick: Tick,
    ) -> Action | None:
        """The HPA's steps after the recommendation: stabilise, rate-limit, bound."""
        # History and text are worked out only when they can change the answer.
        stabilized = desired = recommended
        covered = True
        if recommended < current:  # scale-up is never stabilised
            highest, covered = self._window_recommendations(uri, index, tick)
            window = () if highest is None else (highest,)
            stabilized = desired = stabilize(current, recommended, window)
            if desired < current and not covered:
                desired = current
        limited = desired
        if desired != current:
            up_base, down_base = self._period_bases(uri, tick, current)
            limited = rate_limit(current, desired, up_base, down_base, self._limits)
        low, high = bounds
        final = min(max(limited, low), high)
        if final == current:
            return None
        rule = self._rules[index]
        rec = recommend(current, state.metrics, rule.targets, self._tolerance)
        steps = [rec.explanation]
        window_text = f"{self._window.total_seconds():g} s"
        if stabilized > recommended:
            steps.append(
                f"held at {stabilized}, the highest recommendation of the last {window_text}"
            )
        if stabilized < current and not covered:
            steps.append(f"no scale-down until history covers the {window_text} window")
        if limited != desired:
            period = f"{self._limits.period_seconds:g} s"
            steps.append(f"rate limit caps {desired} at {limited} per {period}")
        moved = f" move {limited} to {final}" if final != limited else ""
        steps.append(f"bounds {bounds_text(state, rule, rule_bounds)}{moved}")
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
            target=state.ref,
            params=Scale(replicas=final),
            policy=self._name,
            reason=reason,
            cost_delta_per_hour=cost,
            priority=self._priority,
        )

    def _usable(self, state: ResourceState, index: int, at: datetime) -> bool:
        """Whether `_metric_problem` finds nothing wrong, without writing why."""
        return all_present(state.metrics, self._pairs[index]) and (
            at - state.observed_at <= self._max_age
        )

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

    def _span(self, tick: Tick) -> Span:
        """Which history snapshots the window and the rate-limit period look at."""
        if tick.span is None:
            now = tick.now
            cutoff = now - self._window
            start = now - self._period
            past = [snapshot for snapshot in tick.history.snapshots if snapshot.taken_at <= now]
            tick.span = Span(
                covering=tuple(s for s in past if s.taken_at <= cutoff),
                window=tuple(
                    (s, self._past.setdefault(id(s), (s, {}))[1])
                    for s in past
                    if s.taken_at >= cutoff
                ),
                period=tuple(s for s in past if s.taken_at > start),
            )
        return tick.span

    def _window_recommendations(self, uri: str, index: int, tick: Tick) -> tuple[int | None, bool]:
        """The highest recommendation recomputed from the window; whether history covers it.

        Only the highest matters: stabilisation scales down to it and no lower.
        """
        span = self._span(tick)
        highest: int | None = None
        for past, memo in span.window:
            if uri in memo:
                then = memo[uri]
            else:
                then = memo[uri] = self._past_recommendation(past, uri, index)
            if then is not None and (highest is None or then > highest):
                highest = then
        covered = not self._window or any(
            past.resources.get(uri) is not None for past in span.covering
        )
        return highest, covered

    def _past_recommendation(self, past: Snapshot, uri: str, index: int) -> int | None:
        """What the policy recommended for ``uri`` in ``past``; None: nothing to count."""
        state = past.resources.get(uri)
        if state is None or state.replicas is None or state.replicas.desired <= 0:
            return None
        if not self._usable(state, index, past.taken_at):
            return None
        return recommended_replicas(
            state.replicas.desired, state.metrics, self._pairs[index], self._tolerance
        )

    def _period_bases(self, uri: str, tick: Tick, current: int) -> tuple[int, int]:
        """The lowest and highest desired count seen in the rate-limit period."""
        counts = [current]
        for past in self._span(tick).period:
            state = past.resources.get(uri)
            if state is not None and state.replicas is not None:
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
        [parse_rule(raw) for raw in config.get("rules", ())],
        tolerance=config.get("tolerance", 0.1),
        stabilization_seconds=config.get("stabilization_seconds", 300.0),
        limits=limits,
        metric_max_age_seconds=config.get("metric_max_age_seconds", 120.0),
    )
