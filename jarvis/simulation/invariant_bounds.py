"""The bounds an action or a route's weights can break, as pure checks.

Called by the invariant checker (`jarvis.simulation.invariants`) on the params
an ``action.started`` event recorded, on an apply the provider witnessed (against
the target as the provider held it) and on the weights in every state at a tick's end.
Each returns what is wrong, in words for the violation, or None.
"""

from __future__ import annotations

import math

from jarvis.model import WEIGHT_TOLERANCE, Action, Scale, SetWeights
from jarvis.simulation.invariant_records import ProviderCall


def call_problem(call: ProviderCall, action: Action, max_shift: float) -> str | None:
    """What in an apply breaks the bounds, against the target as the provider held it."""
    before, held, params = call.before, call.weights_before, action.params
    if isinstance(params, Scale) and params.replicas is not None and before is not None:
        low, high, wanted_replicas = before.min, before.max, params.replicas
        if (low is not None and wanted_replicas < low) or (
            high is not None and wanted_replicas > high
        ):
            return f"for {wanted_replicas} replicas of {action.target}, outside {low}..{high}"
    # Against each model's share of what the route held (clients draw by share);
    # a route that held only zeros carried no traffic to shift.
    total = None if held is None else math.fsum(held.values())
    if isinstance(params, SetWeights) and params.weights and held is not None and total:
        wanted = params.weights
        shares = {m: w / total for m, w in held.items()}
        moves = {m: abs(wanted.get(m, 0.0) - shares.get(m, 0.0)) for m in {*wanted, *shares}}
        model = max(sorted(moves), key=lambda m: moves[m])
        if moves[model] > max_shift + WEIGHT_TOLERANCE:
            return (
                f"to move {model} on {action.target} by {moves[model]:.4f}, "
                f"more than {max_shift:g} in one write"
            )
    return None


def floors_problem(weights: dict[object, object], floors: object) -> str | None:
    if not isinstance(floors, dict):
        return None
    below: list[str] = []
    for model, floor in floors.items():
        if (
            isinstance(floor, int | float)
            and _share(weights.get(model)) < float(floor) - WEIGHT_TOLERANCE
        ):
            below.append(str(model))
    return f"below the floor for {sorted(below)}" if below else None


def _share(value: object) -> float:
    return float(value) if isinstance(value, int | float) else 0.0


def params_problem(params: dict[str, object], max_replicas: int) -> str | None:
    for name in ("replicas", "min_replicas", "max_replicas"):
        value = params.get(name)
        if isinstance(value, int) and not 0 <= value <= max_replicas:
            return f"{name}={value} outside 0..{max_replicas}"
    weights = params.get("weights")
    if isinstance(weights, dict):
        return weights_problem(weights)
    return None


def weights_problem(weights: dict[object, object]) -> str | None:
    # One loop rather than a list, a generator and a second sum: the checker
    # asks this of every route at every tick's end.
    values: list[float] = []
    within = True
    for value in weights.values():
        if isinstance(value, int | float):
            share = float(value)
            values.append(share)
            within = within and 0.0 <= share <= 1.0
    if len(values) != len(weights) or not within:
        return f"weights {weights} are not each within [0, 1]"
    total = math.fsum(values)
    if abs(total - 1.0) > WEIGHT_TOLERANCE:
        return f"weights sum to {total:.6f}, not 1"
    return None
