"""The `llm_usage` table: one row per LLM request, appended by applications.

Defined on the store's shared `metadata` (migration revision 0002 creates it;
0007_churn adds ``customer_id``, the product's customer who made the request,
which the customers sensor counts as activity).
Applications call `record_usage` / `record_usage_async` after each model call;
the `llm_usage` actuator (`jarvis.actuators.llm.usage`) reads the table with
plain SQL, because actuators may not import the store.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Engine,
    Float,
    Index,
    Integer,
    Numeric,
    Table,
    Text,
    create_engine,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from jarvis.store.tables import UtcDateTime, metadata

__all__ = ["llm_usage", "record_usage", "record_usage_async", "usage_row"]

llm_usage = Table(
    "llm_usage",
    metadata,
    Column(
        "id",
        # SQLite autoincrements only an INTEGER PRIMARY KEY, not a BIGINT one.
        BigInteger().with_variant(Integer, "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    Column("time", UtcDateTime(), nullable=False),
    Column("route", Text, nullable=False),
    Column("model", Text, nullable=False),
    Column("input_tokens", Integer, nullable=False),
    Column("output_tokens", Integer, nullable=False),
    # Exact in PostgreSQL; read back as float (asdecimal=False) on both backends.
    Column("cost_usd", Numeric(18, 8, asdecimal=False), nullable=False),
    Column("latency_ms", Float, nullable=False),
    Column("success", Boolean, nullable=False),
    Column("customer_id", Text),
    # Month-to-date sums scan by time; per-route statistics by route, model, time.
    Index(None, "time"),
    Index(None, "route", "model", "time"),
)


def usage_row(
    *,
    route: str,
    model: str,
    input_tokens: int,
    output_tokens: int,
    cost_usd: float,
    latency_ms: float,
    success: bool,
    at: datetime | None = None,
    customer_id: str | None = None,
) -> dict[str, object]:
    """One validated row; ``at`` defaults to now (UTC) and must be timezone-aware."""
    # NaN would pass the check below, and one NaN cost makes the month's sum NaN.
    for name, value in (("cost_usd", cost_usd), ("latency_ms", latency_ms)):
        if not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value}")
    if input_tokens < 0 or output_tokens < 0 or cost_usd < 0 or latency_ms < 0:
        raise ValueError("tokens, cost and latency must not be negative")
    if at is not None and at.tzinfo is None:
        raise ValueError("at must be timezone-aware")
    return {
        "time": at if at is not None else datetime.now(UTC),
        "route": route,
        "model": model,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cost_usd": cost_usd,
        "latency_ms": latency_ms,
        "success": success,
        "customer_id": customer_id,
    }


def record_usage(
    engine: Engine | str,
    *,
    route: str,
    model: str,
    input_tokens: int,
    output_tokens: int,
    cost_usd: float,
    latency_ms: float,
    success: bool,
    at: datetime | None = None,
    customer_id: str | None = None,
) -> None:
    """Append one request to `llm_usage` from a synchronous application.

    ``engine`` is a SQLAlchemy engine (reuse one) or a DSN such as
    ``postgresql+psycopg://…`` or ``sqlite:///jarvis.db``, opened for this call only.
    """
    row = usage_row(
        route=route,
        model=model,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cost_usd=cost_usd,
        latency_ms=latency_ms,
        success=success,
        at=at,
        customer_id=customer_id,
    )
    own = isinstance(engine, str)
    bound = create_engine(engine) if isinstance(engine, str) else engine
    try:
        with bound.begin() as connection:
            connection.execute(llm_usage.insert(), [row])
    finally:
        if own:
            bound.dispose()


async def record_usage_async(
    engine: AsyncEngine,
    *,
    route: str,
    model: str,
    input_tokens: int,
    output_tokens: int,
    cost_usd: float,
    latency_ms: float,
    success: bool,
    at: datetime | None = None,
    customer_id: str | None = None,
) -> None:
    """Append one request to `llm_usage` from an asyncio application."""
    row = usage_row(
        route=route,
        model=model,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cost_usd=cost_usd,
        latency_ms=latency_ms,
        success=success,
        at=at,
        customer_id=customer_id,
    )
    async with engine.begin() as connection:
        await connection.execute(llm_usage.insert(), [row])
