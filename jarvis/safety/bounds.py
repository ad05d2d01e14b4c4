"""Bounds: the blast radius of one tick and the limits on any one change.

Fleet-wide, in `Bounds`:

- at most ``max_actions_per_tick`` actions applied per tick;
- at most one action per resource per tick.

Per kind, in the bound object the composition root maps to that kind's name
(a kind with no entry has no kind-specific bound, so adding a kind never
touches the guard):

- `ScaleBounds`: a scale's counts whole numbers (not bools, not floats),
  never below 0, never above ``max_replicas``, its own min <= replicas <= max,
  and never outside the min/max the provider itself reports (an autoscaler's
  registered range);
- `WeightBounds`: routing weights that sum to 1, each in [0, 1], and no
  model's share of the traffic moving by more than ``max_traffic_shift`` in
  one tick (a share is a weight over the route's current total, as clients
  draw; a route whose weights are all 0 carries no traffic to shift);
- `DnsWeightBounds`: DNS record weights that are whole numbers in 0..255
  (Route 53's range), not all 0 (Route 53 then answers every record equally,
  the failing ones included), naming exactly the records the zone holds, and
  none moving by more than ``max_weight_shift`` in one tick.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from jarvis.model import (
    WEIGHT_TOLERANCE,
    Action,
    ResourceState,
    Scale,
    SetDnsWeights,
    SetWeights,
)


class KindBound(Protocol):
    """The limits on one kind of action, given the target as last observed."""

    def violation(self, action: Action, current: ResourceState | None) -> str | None:
        """Why the action breaks this kind's limits, or None."""
        ...


@dataclass(frozen=True, slots=True)
class Bounds:
    max_actions_per_tick: int = 10
    kinds: Mapping[str, KindBound] = field(default_factory=dict)
    """Kind name -> its bound; looked up by ``action.kind``."""

    def violation(
        self,
        action: Action,
        *,
        applied_this_tick: int,
        touched: frozenset[str],
        current: ResourceState | None,
    ) -> str | None:
        """Why the action breaks a bound, or None when it is within all of them."""
        if applied_this_tick >= self.max_actions_per_tick:
            return f"max {self.max_actions_per_tick} actions per tick reached"
        if str(action.target) in touched:
            return "one action per resource per tick"
        bound = self.kinds.get(action.kind)
        return None if bound is None else bound.violation(action, current)


@dataclass(frozen=True, slots=True)
class ScaleBounds:
    max_replicas: int = 100

    def violation(self, action: Action, current: ResourceState | None) -> str | None:
        params = action.params
        if not isinstance(params, Scale):
            return f"{action.kind} action without scale parameters"
        for label, value in (
            ("replicas", params.replicas),
            ("min_replicas", params.min_replicas),
            ("max_replicas", params.max_replicas),
        ):
            # A bool or a float is not a count: a provider would be sent `true` or `2.5`.
            if value is not None and not _whole_in(value, 0, self.max_replicas):
                if _whole_in(value, self.max_replicas + 1, value):
                    # A count past the bound is the setting's to change, not a wrong type.
                    return (
                        f"{label}={value} is above bounds.max_replicas ({self.max_replicas}); "
                        "raise it to allow more"
                    )
                return f"{label}={value!r} is not a whole number in 0..{self.max_replicas}"
        if params.replicas is None and params.min_replicas is None and params.max_replicas is None:
            return "scale action without a replica count"
        return _own_range_problem(params) or _provider_range_problem(params, current)


def _provider_range_problem(params: Scale, current: ResourceState | None) -> str | None:
    """Why ``params.replicas`` falls outside the min/max the provider reports, or None."""
    if params.replicas is None or current is None or current.replicas is None:
        return None
    low, high = current.replicas.min, current.replicas.max
    if low is not None and params.replicas < low:
        return f"replicas={params.replicas} below the provider's minimum {low}"
    if high is not None and params.replicas > high:
        return f"replicas={params.replicas} above the provider's maximum {high}"
    return None


def _whole_in(value: object, low: int, high: int) -> bool:
    """``value`` is an int (a bool is not) in ``low..high``."""
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _own_range_problem(params: Scale) -> str | None:
    """Why a scale's own min, max and replicas contradict each other, or None.

    Each is within the hard cap, but a min above the max, or replicas outside
    the range the same action registers, would be pulled back by the
    autoscaler at once: the action cannot mean what it says.
    """
    low, high, replicas = params.min_replicas, params.max_replicas, params.replicas
    if low is not None and high is not None and low > high:
        return f"min_replicas={low} above max_replicas={high}"
    if replicas is not None and low is not None and replicas < low:
        return f"replicas={replicas} below the min_replicas={low} it sets"
    if replicas is not None and high is not None and replicas > high:
        return f"replicas={replicas} above the max_replicas={high} it sets"
    return None


@dataclass(frozen=True, slots=True)
class WeightBounds:
    max_traffic_shift: float = 0.5

    def violation(self, action: Action, current: ResourceState | None) -> str | None:
        params = action.params
        weights = params.weights if isinstance(params, SetWeights) else None
        if not weights:
            return "set_weights action without weights"
        if any(not (0.0 <= w <= 1.0) or math.isnan(w) for w in weights.values()):
            return "weights must each lie in [0, 1]"
        if abs(sum(weights.values()) - 1.0) > WEIGHT_TOLERANCE:
            return f"weights sum to {sum(weights.values()):.6f}, not 1"
        before = _current_shares(current)
        if before is None:
            return None  # every weight is 0: no traffic flows, so none can shift
        for model in set(weights) | set(before):
            shift = abs(weights.get(model, 0.0) - before.get(model, 0.0))
            if shift > self.max_traffic_shift + WEIGHT_TOLERANCE:
                return (
                    f"weight of {model} moves by {shift:.2f}, "
                    f"more than {self.max_traffic_shift:.2f} per tick"
                )
        return None


def _current_shares(current: ResourceState | None) -> dict[str, float] | None:
    """Each model's share of the route's traffic now; None when every weight is 0.

    Clients draw by weight relative to the total (`jarvis.routing.client`), so
    hand-written weights that do not sum to 1 (60/20/20) are these shares, and
    all-zero weights route nothing. Unobserved weights are all shares of 0.
    """
    if current is None or current.weights is None:
        return {}
    weights = current.weights.weights
    largest = max((w for w in weights.values() if math.isfinite(w)), default=0.0)
    if largest <= 0:
        return None
    # Relative to the largest first, so 1e308 twice cannot overflow the total.
    scaled = {m: w / largest if math.isfinite(w) and w > 0 else 0.0 for m, w in weights.items()}
    total = math.fsum(scaled.values())
    return {m: w / total for m, w in scaled.items()}


MAX_DNS_WEIGHT = 255
"""Route 53's largest record weight."""


@dataclass(frozen=True, slots=True)
class DnsWeightBounds:
    max_weight_shift: int = 128

    def violation(self, action: Action, current: ResourceState | None) -> str | None:
        params = action.params
        weights = params.record_weights if isinstance(params, SetDnsWeights) else None
        problem = _dns_weights_problem(weights)
        if problem is not None or weights is None:
            return problem
        if current is None or current.dns_weights is None:
            # Unobserved: the shift cannot be measured, so it is not allowed.
            return f"the weights of {action.target} were not observed this tick"
        before = current.dns_weights.weights
        if set(weights) != set(before):
            return (
                f"records {sorted(weights)} are not the records {sorted(before)} "
                f"the zone holds for {action.target}"
            )
        for record in sorted(weights):
            shift = abs(weights[record] - before[record])
            if shift > self.max_weight_shift:
                return (
                    f"weight of {record} moves by {shift}, "
                    f"more than {self.max_weight_shift} per tick"
                )
        return None


def _dns_weights_problem(weights: Mapping[str, int] | None) -> str | None:
    if not weights:
        return "set_dns_weights action without record weights"
    if not all(_whole_in(w, 0, MAX_DNS_WEIGHT) for w in weights.values()):
        return f"record weights must each be a whole number in 0..{MAX_DNS_WEIGHT}"
    if not any(weights.values()):
        return "record weights are all 0 (Route 53 would answer every record equally)"
    return None
