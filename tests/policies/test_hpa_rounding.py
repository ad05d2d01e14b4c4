"""The HPA arithmetic's shortcut around ``round(x, 9)`` agrees with rounding every time."""

from __future__ import annotations

import math

from hypothesis import example, given
from hypothesis import strategies as st

from jarvis.policies.hpa import CPU, RPM, recommended_replicas


def reference(name: str, current: int, value: float, target: float, tolerance: float) -> int:
    """The HPA's formula with the rounding always applied, as the policy had it."""
    if name == RPM:
        ratio = value / (target * current)
        raw = value / target
    else:
        ratio = value / target
        raw = current * ratio
    if round(abs(ratio - 1), 9) <= tolerance:
        return current
    return math.ceil(round(raw, 9))


currents = st.integers(1, 500)
targets = st.floats(0.01, 100_000)
tolerances = st.sampled_from([0.0, 0.05, 0.1, 0.25, 0.5, 0.999]) | st.floats(0, 0.999)
# Steps of 1e-10 around an edge: inside, at and outside the 5e-10 that rounding moves.
hair = st.integers(-300, 300).map(lambda k: k * 1e-10)


@given(st.sampled_from([CPU, RPM]), currents, st.floats(0, 1e7), targets, tolerances)
@example(CPU, 2, 2.2000000000000002, 2.0, 0.1)
@example(CPU, 5, 110.00000000000001, 100.0, 0.1)
def test_agrees_anywhere(
    name: str, current: int, value: float, target: float, tolerance: float
) -> None:
    """Any metric, count, target and tolerance: the recommendation is the rounded formula's."""
    got = recommended_replicas(current, {name: value}, ((name, target),), tolerance)
    assert got == reference(name, current, value, target, tolerance)


@given(st.sampled_from([CPU, RPM]), currents, targets, tolerances, hair, st.booleans())
def test_agrees_at_the_tolerance_edge(
    name: str, current: int, target: float, tolerance: float, step: float, above: bool
) -> None:
    """A ratio a hair from 1 ± the tolerance decides as rounding does."""
    ratio = 1 + tolerance + step if above else 1 - tolerance + step
    value = max(0.0, ratio * target * (current if name == RPM else 1))
    got = recommended_replicas(current, {name: value}, ((name, target),), tolerance)
    assert got == reference(name, current, value, target, tolerance)


@given(currents, st.integers(0, 1000), targets, tolerances, hair)
def test_agrees_at_a_whole_count(
    current: int, whole: int, target: float, tolerance: float, step: float
) -> None:
    """A raw count a hair from a whole number rounds up as rounding does."""
    value = max(0.0, (whole + step) * target)
    got = recommended_replicas(current, {RPM: value}, ((RPM, target),), tolerance)
    assert got == reference(RPM, current, value, target, tolerance)
