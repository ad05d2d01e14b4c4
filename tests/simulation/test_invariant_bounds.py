"""The route checks of `invariant_bounds` answer as their first, plainer form did.

`weights_problem` and `floors_problem` run on every route at every tick's
end, so they are written as single loops; the references below are the
comprehensions they replaced, and any input (numbers out of range, NaN,
strings, None, bools) gets the same answer, or the same exception, from both.
"""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from jarvis.model import WEIGHT_TOLERANCE
from jarvis.simulation.invariant_bounds import floors_problem, weights_problem


def _reference_weights(weights: dict[object, object]) -> str | None:
    values = [float(v) for v in weights.values() if isinstance(v, int | float)]
    if len(values) != len(weights) or any(not 0.0 <= v <= 1.0 for v in values):
        return f"weights {weights} are not each within [0, 1]"
    if abs(math.fsum(values) - 1.0) > WEIGHT_TOLERANCE:
        return f"weights sum to {math.fsum(values):.6f}, not 1"
    return None


def _reference_floors(weights: dict[object, object], floors: object) -> str | None:
    if not isinstance(floors, dict):
        return None
    below = sorted(
        str(model)
        for model, floor in floors.items()
        if isinstance(floor, int | float)
        and (float(s) if isinstance(s := weights.get(model), int | float) else 0.0)
        < float(floor) - WEIGHT_TOLERANCE
    )
    return f"below the floor for {below}" if below else None


def _answer(check: object, *args: object) -> object:
    """What a check returns, or the type of what it raises."""
    try:
        return check(*args)  # type: ignore[operator]
    except Exception as exc:  # noqa: BLE001 -- both sides must fail alike
        return type(exc)


_MODELS = st.sampled_from(["gpt-4o", "claude-haiku", "claude-sonnet", "gemini-flash", "o1"])
_SHARES = st.one_of(
    st.floats(min_value=0.0, max_value=1.0),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-2, max_value=2),
    st.integers(min_value=10**308, max_value=10**400),
    st.booleans(),
    st.none(),
    st.text(max_size=3),
)
_WEIGHTS = st.dictionaries(_MODELS, _SHARES, max_size=5)


@given(_WEIGHTS)
def test_weights_problem_answers_as_its_reference(weights: dict[object, object]) -> None:
    """Any weights, sane or not, get the reference's message, None, or exception."""
    assert _answer(weights_problem, weights) == _answer(_reference_weights, weights)


@given(st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=1, max_size=5))
def test_weights_problem_answers_as_its_reference_on_near_sums(shares: list[float]) -> None:
    """Shares normalized to sum near 1 get the same verdict as the reference's."""
    total = math.fsum(shares) or 1.0
    weights: dict[object, object] = {f"m{i}": s / total for i, s in enumerate(shares)}
    assert weights_problem(weights) == _reference_weights(weights)


@given(_WEIGHTS, st.one_of(st.dictionaries(_MODELS, _SHARES, max_size=4), st.none(), _SHARES))
def test_floors_problem_answers_as_its_reference(
    weights: dict[object, object], floors: object
) -> None:
    """Any floors against any weights get the reference's message, None, or exception."""
    assert _answer(floors_problem, weights, floors) == _answer(_reference_floors, weights, floors)


def test_the_checks_name_what_is_wrong() -> None:
    """Out of range, a bad sum and a broken floor are each reported, and sane weights pass."""
    assert weights_problem({"a": 0.25, "b": 0.75}) is None
    assert weights_problem({"a": 1.5, "b": -0.5}) == (
        "weights {'a': 1.5, 'b': -0.5} are not each within [0, 1]"
    )
    assert weights_problem({"a": 0.5, "b": "x"}) == (
        "weights {'a': 0.5, 'b': 'x'} are not each within [0, 1]"
    )
    assert weights_problem({"a": 0.5, "b": 0.25}) == "weights sum to 0.750000, not 1"
    assert floors_problem({"a": 0.4, "b": 0.6}, {"b": 0.5, "a": 0.5}) == (
        "below the floor for ['a']"
    )
    assert floors_problem({"a": 0.4, "b": 0.6}, {}) is None
