"""Bounds: the blast radius of one tick and the limits on any one change.

- at most ``max_actions_per_tick`` actions applied per tick;
- at most one action per resource per tick;
- a scale never below 0, never above ``max_replicas``, and never outside the
  min/max the provider itself reports (an autoscaler's registered range);
- routing weights that sum to 1, each in [0, 1], and no weight moving by more
  than ``max_traffic_shift`` in one tick.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from jarvis.model import Action, ActionKind, ResourceState

WEIGHT_TOLERANCE = 1e-6


@dataclass(frozen=True, slots=True)
class Bounds:
    max_actions_per_tick: int = 10
    max_replicas: int = 100
    max_traffic_shift: float = 0.5

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
        if action.kind is ActionKind.SCALE:
            return self._scale_violation(action, current)
        if action.kind is ActionKind.SET_WEIGHTS:
            return self._weights_violation(action, current)
        return None

    def _scale_violation(self, action: Action, current: ResourceState | None) -> str | None:
        for label, value in (
            ("replicas", action.replicas),
            ("min_replicas", action.min_replicas),
            ("max_replicas", action.max_replicas),
        ):
            if value is not None and not 0 <= value <= self.max_replicas:
                return f"{label}={value} outside 0..{self.max_replicas}"
        if action.replicas is None and action.min_replicas is None and action.max_replicas is None:
            return "scale action without a replica count"
        if action.replicas is not None and current is not None and current.replicas is not None:
            low, high = current.replicas.min, current.replicas.max
            if low is not None and action.replicas < low:
                return f"replicas={action.replicas} below the provider's minimum {low}"
            if high is not None and action.replicas > high:
                return f"replicas={action.replicas} above the provider's maximum {high}"
        return None

    def _weights_violation(self, action: Action, current: ResourceState | None) -> str | None:
        weights = action.weights
        if not weights:
            return "set_weights action without weights"
        if any(not (0.0 <= w <= 1.0) or math.isnan(w) for w in weights.values()):
            return "weights must each lie in [0, 1]"
        if abs(sum(weights.values()) - 1.0) > WEIGHT_TOLERANCE:
            return f"weights sum to {sum(weights.values()):.6f}, not 1"
        before = _current_weights(current)
        for model in set(weights) | set(before):
            shift = abs(weights.get(model, 0.0) - before.get(model, 0.0))
            if shift > self.max_traffic_shift + WEIGHT_TOLERANCE:
                return (
                    f"weight of {model} moves by {shift:.2f}, "
                    f"more than {self.max_traffic_shift:.2f} per tick"
                )
        return None


def _current_weights(current: ResourceState | None) -> dict[str, float]:
    if current is None or current.weights is None:
        return {}
    return dict(current.weights.weights)
