"""Disruption-budget gauges: limit and what is left, per budget and kind; +Inf off schedule."""

from __future__ import annotations

import math

from jarvis.safety import Remaining
from jarvis.telemetry.metrics import Metrics

NAME = "jarvis_disruption_budget_remaining"


def test_the_gauge_reads_what_is_left_and_inf_off_schedule() -> None:
    """A spent budget reads 0, a partly used one its remainder, an off-schedule one +Inf."""
    metrics = Metrics()
    metrics.set_budgets(
        [
            Remaining("restarts", "sim", "restart", limit=2, used=3),
            Remaining("restarts", "sim", "rollback", limit=2, used=1),
            Remaining("night", "*", "*", limit=None, used=0),
        ]
    )
    sample = metrics.registry.get_sample_value
    assert sample(NAME, {"budget": "restarts", "provider": "sim", "kind": "restart"}) == 0
    assert sample(NAME, {"budget": "restarts", "provider": "sim", "kind": "rollback"}) == 1
    assert sample(NAME, {"budget": "night", "provider": "*", "kind": "*"}) == math.inf
    assert b"# TYPE jarvis_disruption_budget_remaining gauge" in metrics.render()[0]


def test_the_limit_gauge_tells_a_freeze_from_a_budget_spent() -> None:
    """A budget allowing no changes reads limit 0; a spent one its limit; off schedule +Inf."""
    metrics = Metrics()
    metrics.set_budgets(
        [
            Remaining("freeze", "ecs", "restart", limit=0, used=0),
            Remaining("restarts", "sim", "restart", limit=2, used=3),
            Remaining("night", "*", "*", limit=None, used=0),
        ]
    )
    sample = metrics.registry.get_sample_value
    limit = "jarvis_disruption_budget_limit"
    assert sample(NAME, {"budget": "freeze", "provider": "ecs", "kind": "restart"}) == 0
    assert sample(limit, {"budget": "freeze", "provider": "ecs", "kind": "restart"}) == 0
    assert sample(limit, {"budget": "restarts", "provider": "sim", "kind": "restart"}) == 2
    assert sample(limit, {"budget": "night", "provider": "*", "kind": "*"}) == math.inf
