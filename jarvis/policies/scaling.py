"""The scaling policy: HPA-style replica decisions, schedule-aware and priced.

Called by the reconciler once per tick, like every `Policy`. For each service
in the snapshot that a rule matches (first match wins, by URI glob), it
recomputes the HorizontalPodAutoscaler's recommendation (`jarvis.policies.hpa`)
from the current metrics and, for the stabilization windows and the rate
policies' periods, from the snapshots in `History`; then applies the HPA's
``behavior`` as Kubernetes does (`jarvis.policies.hpa_behavior`). Bounds come
from the rule, its schedule (`jarvis.policies.schedule`) and the provider's own
min/max. Missing or stale metrics give a `Note` and no decision, never a scale
to zero; a rule with ``min_replicas = 0`` scales to zero and back on evidence,
as KEDA does (`jarvis.policies.scale_zero`).

History gives what Kubernetes keeps in memory: the recommendations of past
ticks (recomputed from each past snapshot, once, and memoised) and the scale
events (a change of the desired count between two snapshots, timed at the
earlier one, the tick in which it was applied).

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
    all_present,
    missing,
    recommend,
    recommended_replicas,
    usable_recommendation,
)
from jarvis.policies.hpa_behavior import (
    Behavior,
    rate_limit,
    scale_down_limit,
    scale_up_limit,
    stabilize,
)
from jarvis.policies.scale_zero import (
    RPM,
    activity,
    floor_reason,
    idle_through_cooldown,
    wake_reason,
    zero_reason,
)
from jarvis.policies.scaling_config import behavior_from_config
from jarvis.policies.scaling_rules import ScalingRule, bounds_text, parse_rule
from jarvis.policies.scaling_tick import Memo, Span, Tick, scale_events, stale_before
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
        behavior: Behavior | None = None,
        metric_max_age_seconds: float = 120.0,
        priority: int = SCALING_PRIORITY,
        name: str = "scaling",
    ) -> None:
        if not 0 <= tolerance < 1:
            raise ValueError("tolerance must be in [0, 1)")
        if metric_max_age_seconds <= 0:
            raise ValueError("metric_max_age_seconds must be positive")
        self._rules = tuple(rules)
        # Targets as pairs once, not a dict per service per tick.
        self._pairs = tuple(rule.targets.pairs() for rule in self._rules)
        self._tolerance = tolerance
        # Without one, the defaults of the [scaling] settings.
        self._behavior = behavior or behavior_from_config({})
        self._up_window = self._behavior.scale_up.window
        self._down_window = self._behavior.scale_down.window
        self._max_age = timedelta(seconds=metric_max_age_seconds)
        self._priority = priority
        self._name = name
        # Past snapshots never change, so each one's recommendations are computed
        # once: {id(snapshot): (snapshot, {uri: replicas or None})}, filled as a
        # snapshot is decided (it is history next tick) or when a window asks.
        # Holding the snapshot keeps its id from being reused. A memo, not
        # state: the policy's answers are the same with or without it.
        self._past: Memo = {}
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
        tick = Tick(history, now, stale_before(now, self._max_age))
        if now == snapshot.taken_at:
            # What this tick recommends is what later ticks would recompute for
            # this snapshot in their window (same state, same time): keep it.
            tick.recommended = self._past.setdefault(id(snapshot), (snapshot, {}))[1]
        # Decided in URI order, but only the few that are not settled are sorted:
        # what one service works out never depends on another's.
        unsettled: list[tuple[str, ResourceState, int]] = []
        for uri, state in resources.items():
            index = self._rule_of.get(uri)
            if index is None:
                index = self._rule_of[uri] = self._match(uri)
            if index < 0 or state.replicas is None or self._settled(uri, state, index, tick):
                continue
            unsettled.append((uri, state, index))
        actions: list[Action] = []
        notes: list[Note] = []
        for uri, state, index in sorted(unsettled, key=_first):
            result = self._decide(uri, state, index, tick)
            if isinstance(result, Action):
                actions.append(result)
            elif isinstance(result, Note):
                notes.append(result)
        return Evaluation(actions=tuple(actions), notes=tuple(notes))

    def _match(self, uri: str) -> int:
        return next((i for i, rule in enumerate(self._rules) if rule.matches(uri)), -1)

    def _settled(self, uri: str, state: ResourceState, index: int, tick: Tick) -> bool:
        """Whether `_decide` would find nothing to do, by its quiet path alone; False: ask it.

        Most services, most ticks: replicas above zero within bounds of at
        least one, usable metrics, and a recommendation of the current count.
        The same steps as `_decide` and `_move` in one frame (their calls were
        most of the policy's time); anything else is left to them, which
        recompute it, so False never changes a decision.
        """
        replicas = state.replicas
        if replicas is None:
            return False
        current = replicas.desired
        rule_bounds = tick.bounds.get(index)
        if rule_bounds is None:
            rule_bounds = tick.bounds[index] = self._rules[index].bounds(tick.now)
        low, high, _ = rule_bounds
        # Comparisons, not max() and min(): those builtins parse keyword arguments on
        # every call, and the provider's bounds are set for most services.
        floor, ceiling = replicas.min, replicas.max
        if floor is not None and floor > low:
            low = floor
        if ceiling is not None and ceiling < high:
            high = ceiling
        if not 1 <= low <= current <= high:
            return False
        oldest = tick.stale_before
        if oldest is None:
            if tick.now - state.observed_at > self._max_age:
                return False
        elif state.observed_at < oldest:
            return False
        recommended = usable_recommendation(
            current, state.metrics, self._pairs[index], self._tolerance
        )
        if recommended is None:
            return False
        tick.recommended[uri] = recommended
        return recommended == current

    def _decide(
        self, uri: str, state: ResourceState, index: int, tick: Tick
    ) -> Action | Note | None:
        replicas = state.replicas
        if replicas is None:  # evaluate skips these; the check is for mypy
            return None
        rule = self._rules[index]
        current = replicas.desired
        if current <= 0 and not rule.scales_to_zero:
            return self._note(uri, "paused", f"{uri}: scaled to 0 outside Jarvis; not scaling it")
        rule_bounds = tick.bounds.get(index)
        if rule_bounds is None:
            rule_bounds = tick.bounds[index] = rule.bounds(tick.now)
        low, high, _ = rule_bounds
        if replicas.min is not None:
            low = max(low, replicas.min)
        if replicas.max is not None:
            high = min(high, replicas.max)
        if low > high:
            text = bounds_text(state, rule, rule_bounds)
            return self._note(uri, "bounds", f"{uri}: no replica count fits {text}")
        if current <= 0:  # a rule that scales to zero: requests or a floor wake it
            return self._wake(uri, state, rule, (low, high), tick.now)
        counts = (current, low, high)
        if not self._usable(state, index, tick.now):
            tick.recommended[uri] = None
            return self._without_metrics(
                uri, state, rule, counts=counts, rule_bounds=rule_bounds, at=tick.now
            )
        return self._move(uri, state, index, counts=counts, rule_bounds=rule_bounds, tick=tick)

    def _without_metrics(
        self,
        uri: str,
        state: ResourceState,
        rule: ScalingRule,
        *,
        counts: tuple[int, int, int],
        rule_bounds: tuple[int, int, ScheduleWindow | None],
        at: datetime,
    ) -> Action | Note:
        """No usable metrics: a note, or the nearest bound for a count outside the bounds.

        As Kubernetes' HPA, which restores ``minReplicas`` or ``maxReplicas``
        before it reads a metric: the bounds hold whatever the metrics say. Not
        on a stale observation, whose count may be as old as its metrics.
        """
        current, low, high = counts
        problem = self._metric_problem(state, rule, at)
        fresh = at - state.observed_at <= self._max_age
        if low <= current <= high or not fresh:
            return self._note(uri, "metrics", f"{uri}: no scaling decision: {problem}")
        final = min(max(current, low), high)
        moved = f"bounds {bounds_text(state, rule, rule_bounds)} move {current} to {final}"
        return self._action(state, rule, current, final, [f"no metric decision ({problem})", moved])

    def _move(
        self,
        uri: str,
        state: ResourceState,
        index: int,
        *,
        counts: tuple[int, int, int],
        rule_bounds: tuple[int, int, ScheduleWindow | None],
        tick: Tick,
    ) -> Action | None:
        """With usable metrics and bounds that fit: KEDA's zero steps, else the HPA's."""
        current, low, high = counts
        rule = self._rules[index]
        if low == 0:
            if idle_through_cooldown(uri, state, rule, tick.history.snapshots, tick.now):
                return self._action(state, rule, current, 0, [zero_reason(state, rule)])
            low = 1  # below one replica is the cooldown's call, never the HPA's
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

    def _wake(
        self,
        uri: str,
        state: ResourceState,
        rule: ScalingRule,
        bounds: tuple[int, int],
        now: datetime,
    ) -> Action | Note | None:
        """At zero, requests wake it to one replica; a floor (a schedule's) wakes it regardless.

        Only the request metric is read: at zero replicas the others (CPU,
        latency) have nothing to measure, as KEDA's activation reads its trigger
        alone. A floor of one or more holds without it, as the HPA restores
        ``minReplicas`` before it reads a metric (on a fresh observation: a stale
        one's zero may be out of date).
        """
        low, high = bounds
        fresh = now - state.observed_at <= self._max_age
        if fresh and low >= 1:
            return self._action(state, rule, 0, low, [floor_reason(low)])
        active = activity(state, rule) if fresh else None
        if active is None:
            message = f"{uri}: at zero with no usable {RPM} reading; not waking it"
            return self._note(uri, "metrics", message)
        target = min(1, high) if active else 0
        if target <= 0:
            return None
        return self._action(state, rule, 0, target, [wake_reason(state, rule)])

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
        """The HPA's steps after the recommendation: stabilize, rate-limit, bound."""
        up_window, down_window, covered = self._window_recommendations(uri, index, tick)
        if recommended >= current:
            down_window = []  # only the direction being moved in needs its window read
        else:
            up_window = []
        stabilized = desired = stabilize(current, recommended, up_window, down_window)
        if desired < current and not covered:
            desired = current
        limited = desired
        if desired != current:
            events = scale_events(uri, self._span(tick).past, current)
            behavior, now = self._behavior, tick.now
            up = scale_up_limit(current, events, behavior.scale_up, now)
            down = scale_down_limit(current, events, behavior.scale_down, now)
            limited = rate_limit(current, desired, up, down)
        low, high = bounds
        final = min(max(limited, low), high)
        if final == current:
            return None
        rule = self._rules[index]
        rec = recommend(current, state.metrics, rule.targets, self._tolerance)
        steps = [rec.explanation]
        if stabilized < recommended:
            window = f"{self._up_window.total_seconds():g} s"
            steps.append(f"held at {stabilized}, the lowest recommendation of the last {window}")
        if stabilized > recommended:
            window = f"{self._down_window.total_seconds():g} s"
            steps.append(f"held at {stabilized}, the highest recommendation of the last {window}")
        if stabilized < current and not covered:
            window = f"{self._down_window.total_seconds():g} s"
            steps.append(f"no scale-down until history covers the {window} window")
        if limited != desired:
            rising = desired > current
            rules = self._behavior.scale_up if rising else self._behavior.scale_down
            policies = rules.describe("+" if rising else "-")
            steps.append(f"rate limit caps {desired} at {limited} ({policies})")
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
        """Which history snapshots the windows and the rate policies look at."""
        if tick.span is None:
            tick.span = Span.of(tick, self._up_window, self._down_window, self._past)
        return tick.span

    def _window_recommendations(
        self, uri: str, index: int, tick: Tick
    ) -> tuple[list[int], list[int], bool]:
        """The recommendations of each window; whether history covers the scale-down one.

        A fresh process knows no past recommendations; rather than scale down
        on a window it has not seen, it waits until it has. Scale-up does not
        wait: Kubernetes scales up from an empty window too.
        """
        span = self._span(tick)
        windows: list[list[int]] = []
        for window in (span.up_window, span.down_window):
            found: list[int] = []
            for past, memo in window:
                if uri in memo:
                    then = memo[uri]
                else:
                    then = memo[uri] = self._past_recommendation(past, uri, index)
                if then is not None:
                    found.append(then)
            windows.append(found)
        covered = not self._down_window or any(
            past.resources.get(uri) is not None for past in span.covering
        )
        return windows[0], windows[1], covered

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

    def _note(self, uri: str, why: str, message: str) -> Note:
        return Note(message=message, resource=uri, key=f"{self._name}:{why}:{uri}")


def _first(item: tuple[str, ResourceState, int]) -> str:
    return item[0]


def _from_config(config: Mapping[str, Any]) -> ScalingPolicy:
    return ScalingPolicy(
        [parse_rule(raw) for raw in config.get("rules", ())],
        tolerance=config.get("tolerance", 0.1),
        behavior=behavior_from_config(config),
        metric_max_age_seconds=config.get("metric_max_age_seconds", 120.0),
    )
