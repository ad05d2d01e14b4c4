"""Revenue in `jarvis report`: MRR, movements and cost per customer, checked against plain SQL."""

from __future__ import annotations

import re
import sqlite3
import subprocess
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from jarvis.model import Event, EventKind, Movement, RevenueDay
from jarvis.report import build_figures
from jarvis.report.markdown import markdown
from jarvis.store import EventStore
from jarvis.store.customers import customers
from jarvis.store.revenue import RevenueLedger
from tests.cli.conftest import jarvis_argv, jarvis_env

pytestmark = pytest.mark.anyio

PRICES = {"starter": 19.0, "pro": 49.0, "team": 100.0}
DAY = datetime(2026, 3, 11, tzinfo=UTC)


PER_CUSTOMER = re.compile(
    r"Cost per customer \$([\d,]+\.\d\d) a month; per paying customer \$([\d,]+\.\d\d)"
)


def revenue_section(tmp_path: Path, db: Path) -> str:
    """The report's revenue section, printed by `jarvis report` in a process of its own."""
    done = subprocess.run(
        jarvis_argv("report", "--date", "2026-03-11"),
        env=jarvis_env(tmp_path, JARVIS_DATABASE_URL=f"sqlite+aiosqlite:///{db}"),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split("## Revenue against cost", 1)[1].split("\n## ", 1)[0]


def cost_event(resource: str, ts: datetime, attributes: dict[str, object]) -> Event:
    return Event(
        EventKind.RESOURCE_CHANGED,
        ts,
        f"{resource}-{ts.isoformat()}",
        resource=resource,
        payload={"health": "healthy", "attributes": attributes},
    )


async def test_the_report_shows_revenue_and_cost_per_customer_as_sql_computes_them(
    tmp_path: Path,
) -> None:
    """Two settled days, LLM and cloud spend: every revenue figure printed is the SQL's."""
    db = tmp_path / "jarvis.db"
    store = await EventStore.connect(f"sqlite+aiosqlite:///{db}", auto_migrate=True)
    ledger = RevenueLedger(store.engine)

    async def put(cid: str, plan: str, status: str | None, when: datetime) -> None:
        async with store.engine.begin() as connection:
            await connection.execute(customers.delete().where(customers.c.id == cid))
            await connection.execute(
                customers.insert().values(
                    id=cid,
                    email=f"{cid}@c.test",
                    plan=plan,
                    subscription_status=status,
                    signed_up_at=when,
                    updated_at=when,
                )
            )

    first = datetime(2026, 3, 10, 12, tzinfo=UTC)
    for cid, plan in (("a", "starter"), ("b", "team"), ("c", "pro")):
        await put(cid, plan, "active", first)
    await put("f", "free", None, first)
    await ledger.settle(first.date(), PRICES, first)
    second = datetime(2026, 3, 11, 20, tzinfo=UTC)
    await put("a", "pro", "active", second)
    await put("c", "pro", "canceled", second)
    await put("d", "team", "active", second)
    await ledger.settle(second.date(), PRICES, second)
    store.append(
        [
            cost_event(
                "cost://llm",
                datetime(2026, 3, 11, 6, tzinfo=UTC),
                {"month": "2026-03", "by_model": {"gpt-4o": {"cost_usd": 50.0}}},
            ),
            cost_event(
                "cost://aws",
                datetime(2026, 3, 11, 0, tzinfo=UTC),
                {"by_service_usd": {"Amazon ECS": 70.0, "Amazon RDS": 30.0}},
            ),
        ]
    )
    await store.flush()
    await store.aclose()

    text = revenue_section(tmp_path, db)

    with sqlite3.connect(db) as conn:
        mrr, new, expansion, churned = conn.execute(
            "SELECT mrr_usd, new_usd, expansion_usd, churned_usd FROM revenue_daily "
            "WHERE day = '2026-03-11'"
        ).fetchone()
        month_new = conn.execute(
            "SELECT sum(new_usd) FROM revenue_daily WHERE day LIKE '2026-03-%'"
        ).fetchone()[0]
        (plain_mrr,) = conn.execute(
            "SELECT sum(CASE plan WHEN 'starter' THEN 19 WHEN 'pro' THEN 49 WHEN 'team' THEN 100 "
            "ELSE 0 END) FROM customers WHERE subscription_status IN ('active', 'past_due')"
        ).fetchone()
        (everyone,) = conn.execute("SELECT count(*) FROM customers").fetchone()
        (paying,) = conn.execute(
            "SELECT count(*) FROM customers WHERE subscription_status IN ('active', 'past_due')"
        ).fetchone()
        llm = conn.execute(
            "SELECT json_extract(payload, '$.attributes.by_model.\"gpt-4o\".cost_usd') "
            "FROM events WHERE resource = 'cost://llm'"
        ).fetchone()[0]
        cloud = conn.execute(
            "SELECT json_extract(payload, '$.attributes.by_service_usd.\"Amazon ECS\"') + "
            "json_extract(payload, '$.attributes.by_service_usd.\"Amazon RDS\"') "
            "FROM events WHERE resource = 'cost://aws'"
        ).fetchone()[0]
    assert mrr == plain_mrr == 49 + 100 + 100
    assert f"MRR ${mrr:,.2f}: {paying} paying of {everyone} customers." in text
    assert f"| new | ${new:,.2f} | ${month_new:,.2f} |" in text
    assert f"| expansion | ${expansion:,.2f} | ${expansion:,.2f} |" in text
    assert f"| churned | ${churned:,.2f} | ${churned:,.2f} |" in text
    # Both bills extrapolated over March's 31 days from what was recorded after 10 days of it.
    llm_forecast = llm * 31 / (10 + 6 / 24)
    cloud_forecast = cloud * 31 / 10
    cost = llm_forecast + cloud_forecast
    assert f"Month-end cost forecast ${cost:,.2f}:" in text
    assert f"MRR less cost: ${mrr - cost:,.2f}" in text
    per = re.search(
        r"Cost per customer \$([\d,]+\.\d\d) a month; per paying customer \$([\d,]+\.\d\d)", text
    )
    assert per is not None
    assert per.groups() == (f"{cost / everyone:,.2f}", f"{cost / paying:,.2f}")


def test_no_settled_day_says_so_and_a_stale_one_is_named() -> None:
    """Before any settlement the section says how to get one; an older day is marked as such."""
    assert "No revenue settled" in markdown(build_figures([], start=DAY))
    old = RevenueDay(date(2026, 3, 9), mrr_usd=10.0, moved={Movement.NEW: 10.0}, paying=1)
    figures = build_figures([], start=DAY, revenue_days=[old])
    text = markdown(figures)
    assert "MRR $10.00 (last settled 2026-03-09)" in text
    assert "| new | $0.00 | $10.00 |" in text
    assert "No LLM or cloud cost recorded" in text
