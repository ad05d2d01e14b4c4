"""The cost policy: keep LLM spend inside the monthly budget by re-weighting routes.

Called by the reconciler each tick. It reads the month-to-date spend from the
``cost://llm`` resource (published by the `llm_usage` actuator; plus
``cost://aws`` when the AWS actuator publishes it), decides the budget stage,
and for every ``route://<name>`` resource proposes SET_WEIGHTS toward the
target weights of that stage:

- below ``shift_at``: the configured weights, adjusted by performance-based
  selection (`jarvis.policies.model_selection.select`) — so a new month
  restores them, because its spend starts at zero;
- from ``shift_at``: ``shift_share`` of the most expensive model's traffic
  (among those above their floor) moves to the cheapest model the route allows;
- from ``cheapest_at``: the cheapest allowed model takes all the floors leave.

Targets are recomputed from configuration every tick (level-triggered), so
shifts never compound; a move larger than ``max_shift`` (the guard's
``bounds.max_traffic_shift``) is made in steps over several ticks. Crossing
``alert_at`` or a higher threshold, compared with the latest earlier snapshot
whose spend was known (after a restart, with none yet, the highest stage this
policy's recorded alerts reached this month at this budget: `History.alerts`),
yields an alert note. Unknown or stale spend means no proposal at all. Model
cost per request is the model's price at the route's observed token mix this
month (1k in, 1k out when no tokens are recorded). "Cheapest" passes over a
model the performance window shows failing (`_cheapest`). A model the usage
records that no price matches (``LlmUsage.unpriced``) yields one alert note a
month (`_unpriced_notes`).

The month's spend and budget stages live in `jarvis.policies.budget`; prices,
routes and the shape of the settings in `jarvis.policies.cost_settings`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime

from jarvis.model import (
    JSON,
    Action,
    Event,
    History,
    ModelPerformance,
    ResourceRef,
    SetWeights,
    Snapshot,
    month_bounds,
)
from jarvis.policies.base import Evaluation, Note
from jarvis.policies.budget import Budget, Spend, Stage, read_spend
from jarvis.policies.cost_settings import CostConfig, Price, Route, RoutingConfig
from jarvis.policies.model_selection import (
    ModelStats,
    SelectionRules,
    concentrate,
    failing,
    move_share,
    prefer,
    quantize,
    select,
    step_toward,
    traffic_moved,
)

__all__ = ["CostPolicy"]

#: A budget alert's ``stage`` (its payload) to the stage.
_STAGES = {stage.name.lower(): stage for stage in Stage}


class CostPolicy:
    """Budget-driven and performance-based LLM routing (see the module docstring)."""

    def __init__(
        self,
        *,
        routes: tuple[Route, ...],
        prices: Mapping[str, Price],
        budget: Budget | None = None,
        selection: SelectionRules | None = None,
        max_shift: float = 0.5,
        name: str = "cost",
    ) -> None:
        for route in routes:
            unpriced = sorted(set(route.models) - set(prices))
            if unpriced:
                raise ValueError(f"route {route.name!r} allows models with no price: {unpriced}")
        self._routes = routes
        # Each route's resource and its URI, built once: a route's name never changes.
        refs = [ResourceRef("route", route.name, kind="route") for route in routes]
        self._resources = tuple((ref, str(ref)) for ref in refs)
        self._prices = dict(prices)
        self._budget = budget or Budget()
        # The least traffic a proposal must move, fixed with the budget.
        self._min_move = max(self._budget.min_change, 1e-6)
        self._selection = selection
        self._max_shift = max_shift
        self._name = name
        # Per route, the last performance record and what selection made of it,
        # and the last weights quantized and their result. The window's record
        # changes once an hour and a stage's weights rarely, while both were
        # worked out every tick. Equal inputs (compared by value) give the same
        # answer from these pure functions; anything else recomputes. A memo,
        # not state: the policy's answers are the same with or without it.
        self._chosen: dict[str, tuple[object, dict[str, float], str]] = {}
        self._quantized: dict[str, tuple[tuple[tuple[str, float], ...], dict[str, float]]] = {}
        # Per route, the traffic the last weights observed and the last target
        # differ by: both stand for hours, and the policy asks every tick. Kept
        # as copies and compared by value, like the memos above.
        self._moved: dict[str, tuple[dict[str, float], dict[str, float], float]] = {}
        # The last snapshot evaluated, its spend and that spend's stage: next
        # tick it is the history's latest, whose stage the crossing notes
        # compare with. Snapshots are read, never changed, so the same object
        # holds the same spend.
        self._last: tuple[Snapshot, tuple[Spend, Stage] | None] | None = None

    @classmethod
    def from_settings(
        cls, cost: CostConfig, routing: RoutingConfig, *, max_shift: float = 0.5
    ) -> CostPolicy:
        """Build from `CostSettings` and `RoutingSettings`; ValueError if a model has no price.

        ``max_shift`` is the guard's ``bounds.max_traffic_shift``: the policy walks
        toward a target in steps the guard will let through.
        """
        perf = cost.performance
        return cls(
            routes=tuple(
                Route(name, dict(r.weights), tuple(r.models), dict(r.floors))
                for name, r in routing.routes.items()
            ),
            prices={m: Price(p.input_per_1k, p.output_per_1k) for m, p in cost.prices.items()},
            budget=Budget(
                monthly_usd=cost.monthly_budget_usd,
                alert_at=cost.alert_at,
                shift_at=cost.shift_at,
                cheapest_at=cost.cheapest_at,
                shift_share=cost.shift_share,
                include_cloud_spend=cost.include_cloud_spend,
                min_change=cost.min_change,
            ),
            selection=SelectionRules(
                min_requests=perf.min_requests,
                min_success_rate=perf.min_success_rate,
                success_tolerance=perf.success_tolerance,
                score_margin=perf.score_margin,
                shift=perf.shift,
            )
            if perf.enabled
            else None,
            max_shift=max_shift,
        )

    @property
    def name(self) -> str:
        return self._name

    def evaluate(self, snapshot: Snapshot, history: History, now: datetime) -> Evaluation:
        spend = read_spend(snapshot, now, include_cloud=self._budget.include_cloud_spend)
        last = self._last
        if spend is None:
            self._last = (snapshot, None)
            return Evaluation()
        stage = self._budget.stage(spend.total_usd)
        self._last = (snapshot, (spend, stage))
        notes = self._crossing_notes(spend, stage, self._previous_stage(history, spend, last, now))
        notes += self._unpriced_notes(spend, history.alerts)
        actions: list[Action] = []
        for route, resource in zip(self._routes, self._resources, strict=True):
            action = self._propose(route, resource, stage, spend=spend, snapshot=snapshot, now=now)
            if action is not None:
                actions.append(action)
        return Evaluation(actions=tuple(actions), notes=notes)

    def _previous_stage(
        self,
        history: History,
        spend: Spend,
        last: tuple[Snapshot, tuple[Spend, Stage] | None] | None,
        now: datetime,
    ) -> Stage:
        """The stage of the latest snapshot in history with spend known for the month of ``now``.

        A snapshot without it (the usage reader's observe failed that tick) is
        passed over: compared with it, the stage the month had already reached
        read as a new crossing, and its alert went out again. When the latest
        snapshot is the one evaluated last (``last``) and its spend was known,
        that spend's stage is reused: it holds for the month of ``now``
        (``spend``'s) or the spend is stale in it. With no such snapshot (the
        first tick after a restart), the highest stage this policy's recorded
        alerts reached that month.
        """
        if not history.snapshots:
            return self._alerted(history.alerts, spend.month)
        latest = history.snapshots[-1]
        if last is not None and last[0] is latest and last[1] is not None:
            known, its_stage = last[1]
            return its_stage if known.month == spend.month else Stage.NORMAL
        for earlier in reversed(history.snapshots):
            before = read_spend(earlier, now, include_cloud=self._budget.include_cloud_spend)
            if before is not None:
                return self._budget.stage(before.total_usd)
        return self._alerted(history.alerts, spend.month)

    def _alerted(self, alerts: Sequence[Event], month: str) -> Stage:
        """The highest stage this policy raised an alert for in ``month`` at this budget.

        NORMAL: none. An alert raised against another budget (changed across
        the restart) says nothing of this one's stages: the stage it reached
        hid the crossings of the new budget's lower stages until the next.
        """
        reached = Stage.NORMAL
        budget = self._budget.monthly_usd
        for event in alerts:
            if event.policy != self._name or event.payload.get("month") != month:
                continue
            if event.payload.get("budget_usd", budget) != budget:
                continue
            stage = _STAGES.get(str(event.payload.get("stage")))
            if stage is not None and stage > reached:
                reached = stage
        return reached

    def _crossing_notes(self, spend: Spend, stage: Stage, previous: Stage) -> tuple[Note, ...]:
        if stage <= previous or stage is Stage.NORMAL:
            return ()
        b = self._budget
        what = {
            Stage.ALERT: "alert threshold reached",
            Stage.SHIFT: "autonomous cost optimization applied: shifting traffic to cheaper models",
            Stage.CHEAPEST: "budget exhausted: routing to the cheapest allowed models",
        }[stage]
        message = (
            f"{what}; spend ${spend.total_usd:.2f} is {spend.total_usd / b.monthly_usd:.0%} "
            f"of the ${b.monthly_usd:.2f} monthly budget "
            f"(forecast ${spend.forecast_usd:.2f} by month end)"
        )
        payload: dict[str, JSON] = {
            "stage": stage.name.lower(),
            "month": spend.month,
            "spend_usd": round(spend.total_usd, 2),
            "llm_spend_usd": round(spend.llm_usd, 2),
            "cloud_spend_usd": round(spend.cloud_usd, 2),
            "forecast_usd": round(spend.forecast_usd, 2),
            "budget_usd": b.monthly_usd,
        }
        key = f"budget:{spend.month}:{stage.name.lower()}"
        return (Note(message, resource="cost://llm", alert=True, key=key, payload=payload),)

    def _unpriced_notes(self, spend: Spend, alerts: Sequence[Event]) -> tuple[Note, ...]:
        """One alert a month for each model the usage records that no price matches.

        Its spend counts against the budget (its requests recorded at $0 at the
        priciest price), but the stages and selection cannot weigh a model they
        have no price for, and a recorded name that is a typo or a new model
        should be priced or renamed by a human. Told once a month per model:
        `History.alerts` holds what this policy raised, across restarts too.
        """
        if not spend.unpriced:
            return ()
        told = {
            str(event.payload.get("model"))
            for event in alerts
            if event.policy == self._name
            and event.payload.get("unpriced") is True
            and event.payload.get("month") == spend.month
        }
        return tuple(
            Note(
                f"LLM usage recorded under model {model!r} matches no price in [cost.prices]: "
                f"${s.cost_usd:.2f} over {s.requests} request(s) this month counted against "
                "the budget (requests recorded at $0 at the priciest configured price); "
                "price the model, or record it under the name of a priced one",
                resource="cost://llm",
                alert=True,
                key=f"unpriced:{spend.month}:{model}",
                payload={
                    "unpriced": True,
                    "model": model,
                    "month": spend.month,
                    "counted_usd": s.cost_usd,
                    "requests": s.requests,
                },
            )
            for model, s in spend.unpriced.items()
            if model not in told
        )

    def _propose(
        self,
        route: Route,
        resource: tuple[ResourceRef, str],
        stage: Stage,
        *,
        spend: Spend,
        snapshot: Snapshot,
        now: datetime,
    ) -> Action | None:
        ref, uri = resource
        observed = snapshot.get(uri)
        if observed is None:
            return None
        if observed.weights is None:
            return None
        current = observed.weights.weights
        target, why = self._target(route, stage, spend)
        leaving = sorted(m for m, w in current.items() if m not in route.models and w > 0)
        # The smallest change spares small moves between allowed models; a model
        # the route dropped leaves, however little it carries.
        if not leaving and self._traffic_moved(route, current, target) < self._min_move:
            return None
        if leaving:
            why += f"; draining {', '.join(leaving)} (no longer allowed on the route)"
        costs = self._costs_per_request(route, spend, (*route.models, *leaving))
        step = step_toward(current, target, self._max_shift, route.floors)
        if step != target:
            why += f"; stepping at most {self._max_shift:.0%} per tick toward " + " ".join(
                f"{m}={w:.2f}" for m, w in target.items()
            )
        rate = spend.requests_per_hour(route.name, now)
        delta = rate * (_blend(step, costs) - _blend(current, costs))
        _, month_end = month_bounds(now)
        hours_left = max(0.0, (month_end - now).total_seconds() / 3600)
        b = self._budget
        reason = (
            f"route {route.name}: {why} ({_diff(current, step)}); spend "
            f"${spend.total_usd:.2f} of ${b.monthly_usd:.2f} "
            f"({spend.total_usd / b.monthly_usd:.0%}), forecast ${spend.forecast_usd:.2f}; "
            + _projection(delta, hours_left)
        )
        return Action(
            ref,
            SetWeights(step),
            policy=self._name,
            reason=reason,
            cost_delta_per_hour=delta,
        )

    def _costs_per_request(
        self, route: Route, spend: Spend, models: tuple[str, ...] = ()
    ) -> dict[str, float]:
        """Per request at the route's token mix: its models, or ``models`` that have a price.

        A model the route no longer allows may have lost its price too; it is
        left out (costed at 0 in a projection) rather than guessed.
        """
        input_tokens, output_tokens = spend.token_mix(route.name)
        return {
            m: self._prices[m].per_request(input_tokens, output_tokens)
            for m in models or route.models
            if m in self._prices
        }

    def _target(self, route: Route, stage: Stage, spend: Spend) -> tuple[dict[str, float], str]:
        base, why = self._base(route, spend)
        if stage < Stage.SHIFT:
            # Prices only pick the models the budget stages move traffic between.
            return self._quantize(route, base), why
        costs = self._costs_per_request(route, spend)
        cheapest, passed_over = self._cheapest(route, spend, costs)
        if stage is Stage.CHEAPEST:
            target = concentrate(route.models, cheapest, route.floors)
            why = f"budget exhausted: {cheapest} (cheapest allowed) takes all traffic floors allow"
        else:
            movable = [m for m in route.models if base[m] > route.floors.get(m, 0.0) + 1e-9]
            priciest = max(movable, key=lambda m: (costs[m], -route.models.index(m)), default=None)
            target = base
            # Never toward a model no cheaper: passing over failing ones can leave none.
            if priciest is not None and costs[cheapest] < costs[priciest]:
                target = move_share(
                    base, priciest, cheapest, self._budget.shift_share, route.floors
                )
                why = (
                    f"moving {self._budget.shift_share:.0%} of {priciest} traffic to {cheapest} "
                    f"(cheapest allowed), after {why}"
                )
        return self._quantize(route, target), why + passed_over

    def _cheapest(self, route: Route, spend: Spend, costs: Mapping[str, float]) -> tuple[str, str]:
        """The cheapest model the route allows that does not fail its requests, and why not cheaper.

        Saving money by sending the product's traffic to a model that fails it
        is an outage: a model the performance window judges failing (selection's
        quality gate, `failing`) is passed over for the next cheapest. With every
        model failing, or selection off, the cheapest, as nothing better is known.
        """
        # Cheapest first on ties of price, then configuration order.
        order = sorted(route.models, key=lambda m: (costs[m], route.models.index(m)))
        rules = self._selection
        if rules is None:
            return order[0], ""
        bad = failing(_stats(spend.performance.get(route.name)), rules)
        cheapest = next((m for m in order if m not in bad), order[0])
        passed = order[: order.index(cheapest)]
        if not passed:
            return cheapest, ""
        return cheapest, "; passing over " + ", ".join(
            f"{m} (success {bad[m].success_rate:.1%} over {bad[m].requests} requests, "
            f"below {rules.min_success_rate:.0%})"
            for m in passed
        )

    def _base(self, route: Route, spend: Spend) -> tuple[dict[str, float], str]:
        """The configured weights, adjusted by performance-based selection, and why.

        The same dict while the record stands: callers read it and never change it.
        """
        performance = spend.performance.get(route.name)
        record = None if performance is None else tuple(performance.items())
        last = self._chosen.get(route.name)
        if last is not None and last[0] == record:
            return last[1], last[2]
        base = {m: route.weights.get(m, 0.0) for m in route.models}
        why = "restoring the configured weights"
        if self._selection is not None:
            chosen = select(_stats(performance), route.models, self._selection)
            if chosen is not None:
                base = prefer(base, chosen.model, self._selection.shift, route.floors)
                why = chosen.describe()
        self._chosen[route.name] = (record, base, why)
        return base, why

    def _traffic_moved(
        self, route: Route, current: Mapping[str, float], target: Mapping[str, float]
    ) -> float:
        """`traffic_moved` from ``current`` to ``target``, as last time while both stand."""
        last = self._moved.get(route.name)
        if last is not None and last[0] == current and last[1] == target:
            return last[2]
        moved = traffic_moved(current, target)
        self._moved[route.name] = (dict(current), dict(target), moved)
        return moved

    def _quantize(self, route: Route, target: Mapping[str, float]) -> dict[str, float]:
        """`quantize` of ``target`` at the route's floors.

        The same dict while ``target`` stands: callers read it and never change it.
        """
        weights = tuple(target.items())
        last = self._quantized.get(route.name)
        if last is None or last[0] != weights:
            last = self._quantized[route.name] = (weights, quantize(target, route.floors))
        return last[1]


def _stats(performance: Mapping[str, ModelPerformance] | None) -> dict[str, ModelStats]:
    return {
        m: ModelStats(p.requests, p.success_rate, p.mean_latency_ms, p.cost_usd)
        for m, p in (performance or {}).items()
    }


def _blend(weights: Mapping[str, float], costs: Mapping[str, float]) -> float:
    return math.fsum(w * costs.get(m, 0.0) for m, w in weights.items())


def _diff(before: Mapping[str, float], after: Mapping[str, float]) -> str:
    models = [*after, *(m for m in before if m not in after)]
    changed = [
        f"{m} {before.get(m, 0.0):.2f}→{after.get(m, 0.0):.2f}"
        for m in models
        if abs(before.get(m, 0.0) - after.get(m, 0.0)) >= 0.005
    ]
    return ", ".join(changed) or "rounding only"


def _projection(delta_per_hour: float, hours_left: float) -> str:
    if abs(delta_per_hour) < 1e-9:
        return "no projected cost change (no traffic recorded this month)"
    total = delta_per_hour * hours_left
    if total < 0:
        return (
            f"projected saving ${-total:.2f} over the remaining {hours_left:.0f} h of the month "
            f"(${-delta_per_hour:.4f}/h)"
        )
    return (
        f"projected extra cost ${total:.2f} over the remaining {hours_left:.0f} h of the month "
        f"(${delta_per_hour:.4f}/h)"
    )
