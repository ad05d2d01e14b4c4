"""`Budget.stage` answers as the table of thresholds it was first written as."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from jarvis.policies.budget import Budget, Stage


def _reference(budget: Budget, spend_usd: float) -> Stage:
    used = spend_usd / budget.monthly_usd
    for stage, at in (
        (Stage.CHEAPEST, budget.cheapest_at),
        (Stage.SHIFT, budget.shift_at),
        (Stage.ALERT, budget.alert_at),
    ):
        if used >= at:
            return stage
    return Stage.NORMAL


_FRACTIONS = st.floats(min_value=0.0, max_value=2.0) | st.floats(allow_nan=True)


@given(
    st.floats(min_value=1.0, max_value=1e6),
    _FRACTIONS,
    _FRACTIONS,
    _FRACTIONS,
    st.floats(allow_nan=True, allow_infinity=True),
)
def test_stage_is_the_first_threshold_reached_from_the_top(
    monthly: float, alert: float, shift: float, cheapest: float, spend: float
) -> None:
    """Any thresholds, ordered or not, and any spend, NaN included, give the table's stage."""
    budget = Budget(monthly_usd=monthly, alert_at=alert, shift_at=shift, cheapest_at=cheapest)
    assert budget.stage(spend) is _reference(budget, spend)


@given(_FRACTIONS, _FRACTIONS, _FRACTIONS, st.sampled_from(["alert", "shift", "cheapest"]))
def test_stage_at_a_threshold_exactly_is_that_threshold_reached(
    alert: float, shift: float, cheapest: float, which: str
) -> None:
    """Spend equal to a threshold (budget 1, so no division rounds) gives the table's stage."""
    budget = Budget(monthly_usd=1.0, alert_at=alert, shift_at=shift, cheapest_at=cheapest)
    spend = {"alert": alert, "shift": shift, "cheapest": cheapest}[which]
    assert budget.stage(spend) is _reference(budget, spend)
