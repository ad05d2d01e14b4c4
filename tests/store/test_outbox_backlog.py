"""The outbox under a backlog: a receiver down for hours leaves pending rows piling up.

A claim walks only the pending rows not ``waiting`` behind an older one of their
incident on their channel (their own partial index, in id order), so the rows
piled up behind them are never read. Of each row it reaches it still asks whether
an older pending row holds it back, through the pending rows' index on (channel,
incident, id), one lookup each, on both dialects: without it, each candidate read
every pending row, or (SQLite) every row ever written.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert, text

from jarvis.store.events import EventStore
from jarvis.store.outbox import PENDING, SENT, Outbox, claimable, notifications

pytestmark = pytest.mark.anyio

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
INDEX = "ix_notifications_channel_incident_id"
NOT_WAITING = "ix_notifications_id"


def _row(key: str, channel: str, incident: str, status: str, at: datetime) -> dict[str, Any]:
    return {
        "dedup_key": key,
        "channel": channel,
        "incident": incident,
        "action": "trigger",
        "message": {"text": key},
        "status": status,
        "attempts": 1 if status == SENT else 0,
        "next_attempt_at": at,
        "last_error": "",
        "created_at": at,
        "sent_at": at if status == SENT else None,
        "waiting": False,
    }


def _backlog(sent: int, pending: int, incidents: int) -> list[dict[str, Any]]:
    """Delivered history, then an outage's rows: each incident's oldest on a channel backing
    off for ten minutes, the rest due since they were written and waiting behind it."""
    channels = ("slack", "pagerduty", "email")
    start = NOW - timedelta(hours=6)
    rows = [
        _row(f"sent-{i}", channels[i % 3], f"old-{i}", SENT, start - timedelta(days=1))
        for i in range(sent)
    ]
    heads: set[tuple[str, str]] = set()
    for i in range(pending):
        channel, incident = channels[i % 3], f"incident-{i % incidents}"
        row = _row(f"pending-{i}", channel, incident, PENDING, start + timedelta(seconds=i))
        if (channel, incident) not in heads:
            row.update(attempts=3, next_attempt_at=NOW + timedelta(minutes=10))
            heads.add((channel, incident))
        else:
            row.update(waiting=True)  # as `Outbox.commit` writes it behind a pending row
        rows.append(row)
    return rows


@pytest.fixture
async def outbox(db_url: str) -> AsyncIterator[Outbox]:
    """An outbox holding 3,000 sent rows and 600 pending in 40 incidents over 3 channels."""
    store = await EventStore.connect(db_url, auto_migrate=True)
    try:
        async with store.engine.begin() as conn:
            await conn.execute(insert(notifications), _backlog(3_000, 600, 40))
            await conn.execute(text("ANALYZE notifications"))
        yield Outbox(store.engine)
    finally:
        await store.aclose()


async def _plan(outbox: Outbox) -> str:
    """The plan of the claim's query at ``NOW``, as the database describes it."""
    engine = outbox.engine
    query = str(claimable(NOW, ()).compile(engine, compile_kwargs={"literal_binds": True}))
    async with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            found = await conn.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {query}")
            return json.dumps(found.scalar_one())
        found = await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {query}")
        return "\n".join(str(row[-1]) for row in found)


async def test_a_claim_walks_the_rows_that_do_not_wait_and_looks_each_up_in_the_index(
    outbox: Outbox,
) -> None:
    """The claim reads the pending rows not waiting, in id order, from their own index (not
    the table, nor every due row); each one's question (an older pending row of its incident
    on its channel?) is one lookup in the pending rows' (channel, incident, id) index."""
    plan = await _plan(outbox)
    if outbox.engine.dialect.name == "postgresql":
        leaves = re.findall(r"\{[^{}]*\}", plan)
        scans = [node for node in leaves if '"Alias": "notifications"' in node]
        assert len(scans) == 1, plan
        assert f'"Index Name": "{NOT_WAITING}"' in scans[0], plan
        lookups = [
            node
            for node in re.findall(r'\{[^{}]*"Index Name": "[^"]*"[^{}]*\}', plan)
            if f'"Index Name": "{INDEX}"' in node
        ]
        assert lookups, plan
        assert any(
            "channel = notifications.channel" in node
            and "incident = notifications.incident" in node
            and "id < notifications.id" in node
            for node in lookups
        ), plan
    else:
        assert f"SCAN notifications USING INDEX {NOT_WAITING}" in plan, plan
        assert re.search(
            rf"SEARCH earlier USING (COVERING )?INDEX {INDEX} "
            r"\(channel=\? AND incident=\? AND id<\?\)",
            plan,
        ), plan


async def test_a_backlog_yields_the_one_row_that_can_go_then_the_next_of_an_incident(
    outbox: Outbox,
) -> None:
    """Behind heads backing off, a new alert is claimed; once a head is sent, the row after it
    on its channel is next, and the others of its incident still wait."""
    assert await outbox.claim(NOW, NOW) is None
    async with outbox.engine.begin() as conn:
        await conn.execute(insert(notifications), [_row("new", "email", "new-alert", PENDING, NOW)])
    claimed = await outbox.claim(NOW, NOW + timedelta(minutes=1))
    assert claimed is not None
    assert claimed.dedup_key == "new"
    assert await outbox.claim(NOW, NOW) is None
    head = next(r for r in await outbox.rows(PENDING) if r.dedup_key == "pending-0")
    await outbox.mark_sent(head.id, 4, NOW)
    due = await outbox.due(NOW)
    assert [r.dedup_key for r in due] == ["pending-120"]  # 40 incidents x 3 channels later
    claimed = await outbox.claim(NOW, NOW + timedelta(minutes=1))
    assert claimed is not None
    assert claimed.dedup_key == "pending-120"
    await outbox.mark_failed(claimed.id, 1, "410 Gone")  # a failed row lets the next go too
    assert [r.dedup_key for r in await outbox.due(NOW)] == ["pending-240"]
