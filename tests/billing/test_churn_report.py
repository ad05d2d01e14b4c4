"""The daily report lists medium-risk customers by id, judged by the churn policy's own rules."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from jarvis.app import report_churn_rules
from jarvis.loop.clock import VirtualClock
from jarvis.report.load import load_figures
from jarvis.report.markdown import markdown
from jarvis.store.usage import record_usage_async
from tests.billing.conftest import sign_up

pytestmark = pytest.mark.anyio

DAY = timedelta(days=1)


async def test_medium_risk_customers_are_listed_by_id_without_personal_data(
    make_app: Any, clock: VirtualClock
) -> None:
    """14-29 days quiet is medium; recent usage in llm_usage clears a stale column; no emails."""
    app = await make_app()
    start = clock.now().replace(hour=0, minute=0, second=0, microsecond=0) - DAY
    end = start + DAY
    for customer_id, quiet_days in (("m1", 15), ("m2", 29), ("high", 31), ("fresh", 2)):
        await sign_up(
            app,
            customer_id,
            end - 60 * DAY,
            email_address=f"{customer_id}@customers.test",
            last_active_at=end - quiet_days * DAY,
        )
    await sign_up(app, "used", end - 60 * DAY, last_active_at=end - 20 * DAY)
    await record_usage_async(
        app.store.engine,
        route="chat",
        model="m",
        input_tokens=1,
        output_tokens=1,
        cost_usd=0.0,
        latency_ms=1.0,
        success=True,
        at=end - 3 * DAY,
        customer_id="used",
    )
    rules = report_churn_rules(app.settings)
    assert rules is not None
    figures = await load_figures(app.store, start, 0.0, rules)
    assert figures.medium_risk == ["m1", "m2"]
    text = markdown(figures)
    assert "Customers at medium churn risk" in text
    assert "`m1`, `m2`" in text
    assert "@customers.test" not in text


async def test_without_customers_the_report_has_no_churn_section(make_app: Any) -> None:
    """Customers off: no rules, no section."""
    app = await make_app(customers_extra={"churn": {"enabled": False}})
    assert report_churn_rules(app.settings) is None
