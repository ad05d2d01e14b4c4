"""`jarvis report` on a seeded simulated day: its figures are the ones the events imply.

The simulation records a day into SQLite through the daemon's store code; the
test reads the same rows with plain SQL and computes every figure its own way,
then compares them with what the command printed. The HTML is rendered in
headless Chromium and its embedded charts are decoded with Pillow.
"""

from __future__ import annotations

import base64
import io
import json
import math
import re
import sqlite3
import subprocess
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from PIL import Image
from playwright.async_api import Browser, async_playwright

from jarvis.report.load import load_figures
from jarvis.simulation import SimulationConfig, run_simulation, simulation_settings
from jarvis.simulation.faults import FaultKind
from jarvis.store import EventStore
from tests.cli.conftest import jarvis_argv, jarvis_env

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(600)]

CHROMIUM = Path("/usr/bin/chromium")
DAY = "2026-01-05"
NEXT_DAY = "2026-01-06"
OUTCOMES = {
    "action.applied": "applied",
    "action.failed": "failed",
    "action.unknown": "unknown",
    "action.blocked": "blocked",
    "action.escalated": "escalated",
}


@pytest.fixture
async def day_db(tmp_path: Path) -> Path:
    """The simulation from 08:00 to midnight of DAY: crashes, an unfixable service, spikes."""
    db = tmp_path / "day.db"
    config = SimulationConfig(
        seed=5,
        days=16 / 24,
        services=6,
        faults=(FaultKind.CRASH, FaultKind.NEVER_RECOVERS, FaultKind.SPIKE),
        intensity=30,
        database_url=f"sqlite+aiosqlite:///{db}",
    )
    report = await run_simulation(simulation_settings(spool_path=tmp_path / "s.jsonl"), config)
    assert report.ok, [v.as_dict() for v in report.violations]
    return db


def jarvis_report(tmp_path: Path, db: Path, *args: str) -> str:
    env = jarvis_env(tmp_path, JARVIS_DATABASE_URL=f"sqlite+aiosqlite:///{db}")
    done = subprocess.run(
        jarvis_argv("report", "--date", DAY, *args),
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def rows(db: Path, sql: str, *params: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, params).fetchall()


def ts(value: object) -> datetime:
    return datetime.fromisoformat(str(value))


def expected_incidents(db: Path) -> tuple[list[float], int, int]:
    """(sorted closed durations, incidents needing a human, still open) from the raw rows."""
    found = rows(
        db,
        "SELECT ts, kind, resource, json_extract(payload, '$.health') FROM events "
        "WHERE ts >= ? AND ts < ? AND kind IN "
        "('resource.changed', 'action.escalated', 'retries.reset') ORDER BY ts, id",
        DAY,
        NEXT_DAY,
    )
    since: dict[str, datetime] = {}
    helped: set[str] = set()
    closed: list[float] = []
    human = 0
    for when, kind, resource, health in found:
        name = str(resource)
        if kind != "resource.changed":
            helped |= {name} & set(since)
        elif health == "healthy" and name in since:
            closed.append((ts(when) - since.pop(name)).total_seconds())
            human += name in helped
            helped.discard(name)
        elif health not in (None, "healthy"):
            since.setdefault(name, ts(when))
    return sorted(closed), human + len(helped & set(since)), len(since)


def nearest_rank(values: list[float], q: float) -> str:
    seconds = round(values[math.ceil(q / 100 * len(values)) - 1])
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


async def test_the_report_of_a_simulated_day_has_the_figures_its_events_imply(
    tmp_path: Path, day_db: Path
) -> None:
    """Actions by kind and outcome, incidents and their times, escalations and spend match."""
    text = jarvis_report(tmp_path, day_db)
    actions: dict[str, Counter[str]] = {}
    for kind, action_kind, n in rows(
        day_db,
        "SELECT kind, action_kind, count(*) FROM events WHERE ts >= '2026-01-05' "
        "AND ts < '2026-01-06' AND action_kind IS NOT NULL GROUP BY kind, action_kind",
    ):
        if kind in OUTCOMES:
            actions.setdefault(str(action_kind), Counter())[OUTCOMES[str(kind)]] += int(str(n))
    table = text.split("## Actions by kind and outcome")[1].split("##")[0]
    header, _, *lines = [line for line in table.splitlines() if line.startswith("|")]
    outcomes = [c.strip() for c in header.strip("|").split("|")][1:]
    printed = {
        cells[0]: {o: int(v) for o, v in zip(outcomes, cells[1:], strict=True) if int(v)}
        for cells in ([c.strip() for c in line.strip("|").split("|")] for line in lines)
    }
    assert printed == {k: dict(c) for k, c in actions.items()}
    assert sum(c["escalated"] for c in actions.values()) > 0, "the day has no escalation"

    closed, human, still_open = expected_incidents(day_db)
    assert closed, "the day has no incident"
    total = len(closed) + still_open
    assert (
        f"{total} incidents (a resource unhealthy until healthy again): "
        f"{total - human} mended by Jarvis alone, {human} needed a human, "
        f"{still_open} still open at the day's end. Time to remediate: median "
        f"{nearest_rank(closed, 50)}, p95 {nearest_rank(closed, 95)}."
    ) in " ".join(text.split())

    ((payload,),) = rows(
        day_db,
        "SELECT payload FROM events WHERE resource = 'cost://llm' AND ts < '2026-01-06' "
        "ORDER BY ts DESC LIMIT 1",
    )
    by_model = json.loads(str(payload))["attributes"]["by_model"]
    spent = sum(m["cost_usd"] for m in by_model.values())
    assert f"${spent:,.2f} spent" in text
    for model, usage in by_model.items():
        assert f"| {model} | ${usage['cost_usd']:,.2f} |" in text


async def test_the_replicas_chart_traffic_comes_from_the_hourly_samples(day_db: Path) -> None:
    """One `metrics.sampled` per simulated hour; the chart's traffic series are their values."""
    expected: dict[str, list[tuple[datetime, float]]] = defaultdict(list)
    sampled = rows(
        day_db,
        "SELECT ts, payload FROM events WHERE kind = 'metrics.sampled' AND ts >= ? AND ts < ? "
        "ORDER BY ts, id",
        DAY,
        NEXT_DAY,
    )
    for when, payload in sampled:
        at = ts(when)
        at = at if at.tzinfo else at.replace(tzinfo=UTC)
        for uri, rpm in json.loads(str(payload))["requests_per_minute"].items():
            expected[uri].append((at, float(rpm)))
    assert sorted(ts(when).hour for when, _ in sampled) == list(range(8, 24))
    assert len(expected) == 6, "every simulated service reports its traffic"
    store = await EventStore.connect(f"sqlite+aiosqlite:///{day_db}", read_only=True)
    try:
        figures = await load_figures(store, datetime.fromisoformat(DAY).replace(tzinfo=UTC), 0.0)
    finally:
        await store.aclose()
    assert figures.traffic == dict(expected)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox"]
        )
        yield launched
        await launched.close()


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin")
async def test_the_html_report_renders_with_charts_that_decode(
    tmp_path: Path, day_db: Path, browser: Browser
) -> None:
    """Three PNG charts are embedded, decode, and the page shows them at their size."""
    out = tmp_path / "report.html"
    assert jarvis_report(tmp_path, day_db, "--format", "html", "--out", str(out)) == ""
    page_html = out.read_text(encoding="utf-8")
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page_html)
    assert len(images) == 3
    for data in images:
        image = Image.open(io.BytesIO(base64.b64decode(data)))
        image.load()
        assert image.format == "PNG"
        assert image.width > 400
        assert image.height > 200
    page = await browser.new_page(viewport={"width": 1200, "height": 900})
    await page.goto(out.as_uri())
    widths = await page.eval_on_selector_all("img", "imgs => imgs.map(i => i.naturalWidth)")
    assert len(widths) == 3
    assert all(w > 400 for w in widths)
    assert await page.title() == f"Jarvis daily report, {DAY} (UTC)"
    await page.screenshot(path=str(tmp_path / "report.png"), full_page=True)


def test_a_missing_sqlite_database_is_an_error_not_a_quiet_day(tmp_path: Path) -> None:
    """No database file: exit 2 with one line, and no empty database left behind."""
    missing = tmp_path / "absent.db"
    done = subprocess.run(
        jarvis_argv("report", "--date", DAY),
        env=jarvis_env(tmp_path, JARVIS_DATABASE_URL=f"sqlite+aiosqlite:///{missing}"),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0
    assert "no event database" in done.stderr
    assert not missing.exists()


def test_a_malformed_date_is_one_line_and_exit_2(tmp_path: Path) -> None:
    """`--date 05/01/2026` names the expected form, without a traceback."""
    done = subprocess.run(
        jarvis_argv("report", "--date", "05/01/2026"),
        env=jarvis_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    assert "expected YYYY-MM-DD" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("day", ["0001-01-01", "9999-12-31"])
def test_a_day_nothing_can_have_recorded_is_one_line_and_exit_2(tmp_path: Path, day: str) -> None:
    """Year 1 and year 9999 are refused by name; the report's windows around them
    overflowed `datetime` in a traceback once a database existed."""
    env = jarvis_env(tmp_path)
    made = subprocess.run(
        jarvis_argv("tick"), env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert made.returncode == 0, made.stderr
    done = subprocess.run(
        jarvis_argv("report", "--date", day),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert "from 1970-01-01 to today" in done.stderr
