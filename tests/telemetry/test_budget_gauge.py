"""The disruption-budget gauge: what is left per budget and kind, +Inf off schedule."""

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
