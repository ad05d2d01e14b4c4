"""Traffic-weight arithmetic and performance-based model selection for LLM routes.

Pure helpers used by the cost policy (`jarvis.policies.cost`): moving a share
of one model's traffic to another without breaking per-model floors, sending
everything the floors allow to one model, rounding a weight map so it sums to
exactly one million millionths, and picking a route's best model from the
usage statistics the `llm_usage` actuator publishes (success rate and latency
per dollar, over the last N days). No I/O, no clock, no randomness.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from jarvis.model import JSON

#: Weights are written with six decimals; they sum to exactly this many units.
UNITS = 1_000_000


def quantize(weights: Mapping[str, float], floors: Mapping[str, float]) -> dict[str, float]:
    """Normalize to a sum of 1 in steps of 1e-6, never rounding below a floor.

    Non-finite and negative weights count as zero. Rounding uses the largest
    remainder, so the units always sum to `UNITS` exactly and each model is
    off its exact share by less than one unit (bar a floor lifting it).
    """
    clean = {m: w if math.isfinite(w) and w > 0 else 0.0 for m, w in weights.items()}
    total = math.fsum(clean.values())
    if total <= 0:
        raise ValueError("no model has a positive weight")
    exact = {m: w / total * UNITS for m, w in clean.items()}
    minimum = {m: max(0, math.ceil(floors.get(m, 0.0) * UNITS - 1e-6)) for m in clean}
    if sum(minimum.values()) > UNITS:
        minimum = dict.fromkeys(clean, 0)
    units = {m: max(minimum[m], math.floor(exact[m])) for m in clean}
    missing = UNITS - sum(units.values())
    if missing > 0:
        # The most under-served models get one more unit each, in a stable order.
        order = sorted(clean, key=lambda m: (units[m] - exact[m], m))
        for index in range(missing):
            units[order[index % len(order)]] += 1
    elif missing < 0:
        # Floors lifted some models: take the excess from the most over-served.
        order = sorted(clean, key=lambda m: (exact[m] - units[m], m))
        for model in order:
            take = min(-missing, units[model] - minimum[model])
            units[model] -= take
            missing += take
    return {m: u / UNITS for m, u in units.items()}


def move_share(
    weights: Mapping[str, float],
    source: str,
    dest: str,
    share: float,
    floors: Mapping[str, float],
) -> dict[str, float]:
    """Move ``share`` of ``source``'s weight to ``dest``, stopping at ``source``'s floor."""
    out = dict(weights)
    have = out.get(source, 0.0)
    amount = max(0.0, min(share * have, have - floors.get(source, 0.0)))
    if source == dest or amount <= 0:
        return out
    out[source] = have - amount
    out[dest] = out.get(dest, 0.0) + amount
    return out


def concentrate(
    models: tuple[str, ...], dest: str, floors: Mapping[str, float]
) -> dict[str, float]:
    """All traffic to ``dest`` except what the other models' floors keep."""
    out = {m: floors.get(m, 0.0) for m in models if m != dest}
    out[dest] = max(0.0, 1.0 - math.fsum(out.values()))
    return out


def prefer(
    weights: Mapping[str, float], winner: str, share: float, floors: Mapping[str, float]
) -> dict[str, float]:
    """Move ``share`` of every other model's weight to ``winner``, floors respected."""
    out = dict(weights)
    for model in list(out):
        if model != winner:
            out = move_share(out, model, winner, share, floors)
    return out


def step_toward(
    current: Mapping[str, float],
    target: Mapping[str, float],
    max_shift: float,
    floors: Mapping[str, float],
) -> dict[str, float]:
    """Part of the way from ``current`` to ``target``: no weight moves more than ``max_shift``.

    ``current`` is first renormalized. A model it carries that ``target`` lacks
    (one the route no longer allows) heads for 0 like any other move: in steps,
    so the guard, which bounds every model's move, lets each one through; it
    is left out of the step that reaches 0. The step is a straight line, so it
    sums to 1 and keeps every floor both ends keep; it stops a hair short of
    ``max_shift`` so rounding cannot push it over the guard's per-tick bound.
    """
    leaving = [m for m, w in current.items() if m not in target and w > 0]
    kept = {m: max(0.0, current.get(m, 0.0)) for m in (*target, *leaving)}
    total = math.fsum(kept.values())
    if total <= 0:
        return dict(target)
    start = {m: w / total for m, w in kept.items()}
    goal = {m: target.get(m, 0.0) for m in kept}
    biggest = max(abs(goal[m] - start[m]) for m in kept)
    if biggest <= max_shift:
        return dict(target)
    fraction = max(0.0, max_shift - 2 / UNITS) / biggest
    return quantize({m: start[m] + fraction * (goal[m] - start[m]) for m in kept}, floors)


def traffic_moved(before: Mapping[str, float], after: Mapping[str, float]) -> float:
    """The share of traffic that changes model going from ``before`` to ``after``."""
    # A list, not a generator: the cost policy asks this of every route every
    # tick. fsum is correctly rounded, so the order of the models cannot matter.
    moved = [abs(after.get(m, 0.0) - before.get(m, 0.0)) for m in before.keys() | after.keys()]
    return math.fsum(moved) / 2


@dataclass(frozen=True, slots=True)
class ModelStats:
    """One model's record on one route over the selection window."""

    requests: int
    success_rate: float
    mean_latency_ms: float
    cost_usd: float

    @property
    def cost_per_request(self) -> float:
        return self.cost_usd / self.requests if self.requests else 0.0

    @property
    def score(self) -> float:
        """Successes per (dollar per request x second of latency): higher is better."""
        dollars = max(self.cost_per_request, 1e-9)
        seconds = max(self.mean_latency_ms / 1000, 1e-3)
        return self.success_rate / (dollars * seconds)

    @classmethod
    def parse(cls, raw: JSON) -> ModelStats | None:
        """Read one entry of the ``performance`` attribute; None if malformed."""
        if not isinstance(raw, Mapping):
            return None
        try:
            return cls(
                requests=int(raw["requests"]),
                success_rate=float(raw["success_rate"]),
                mean_latency_ms=float(raw["mean_latency_ms"]),
                cost_usd=float(raw["cost_usd"]),
            )
        except (KeyError, TypeError, ValueError):
            return None


@dataclass(frozen=True, slots=True)
class SelectionRules:
    """When one model is preferred on a route, and by how much (see PerformanceSettings)."""

    min_requests: int = 100
    min_success_rate: float = 0.9
    success_tolerance: float = 0.02
    score_margin: float = 0.1
    shift: float = 0.25


@dataclass(frozen=True, slots=True)
class Selection:
    """The preferred model on a route and why."""

    model: str
    stats: ModelStats
    runner_up: str | None

    def describe(self) -> str:
        s = self.stats
        against = f", ahead of {self.runner_up}" if self.runner_up else ""
        return (
            f"preferring {self.model} on performance (success {s.success_rate:.1%}, "
            f"{s.mean_latency_ms:.0f} ms, ${s.cost_per_request:.4f}/request over "
            f"{s.requests} requests{against})"
        )


def failing(stats: Mapping[str, ModelStats], rules: SelectionRules) -> dict[str, ModelStats]:
    """The models with enough requests to judge whose success rate misses ``min_success_rate``.

    The quality gate of `select`, on its own: the cost policy's budget stages
    pass over these when they pick the cheapest model to move traffic to.
    """
    return {
        m: s
        for m, s in stats.items()
        if s.requests >= rules.min_requests and s.success_rate < rules.min_success_rate
    }


def select(
    stats: Mapping[str, ModelStats], allowed: tuple[str, ...], rules: SelectionRules
) -> Selection | None:
    """The route's best model by success per dollar-second, or None if none stands out.

    Only allowed models with enough requests are judged. Quality gates first:
    a model must reach ``min_success_rate`` and be within ``success_tolerance``
    of the best success rate; among those, the highest score wins if it beats
    the runner-up's by ``score_margin`` (so near-ties do not flap).
    """
    judged = {m: s for m, s in stats.items() if m in allowed and s.requests >= rules.min_requests}
    if len(judged) < 2:
        # Nothing to compare against: preferring the only measured model would
        # starve the others of the traffic that could ever measure them.
        return None
    best_success = max(s.success_rate for s in judged.values())
    eligible = {
        m: s
        for m, s in judged.items()
        if s.success_rate >= rules.min_success_rate
        and s.success_rate >= best_success - rules.success_tolerance
    }
    if not eligible:
        return None
    ranked = sorted(eligible, key=lambda m: (-eligible[m].score, m))
    winner = ranked[0]
    if len(ranked) > 1:
        runner_up = ranked[1]
        if eligible[winner].score < eligible[runner_up].score * (1 + rules.score_margin):
            return None
        return Selection(winner, eligible[winner], runner_up)
    # A model alone past the quality gate wins against the ones that failed it.
    others = sorted(m for m in judged if m != winner)
    return Selection(winner, eligible[winner], others[0])
