"""What the product's applications import to take part in LLM routing.

`RoutingClient` (from `jarvis.routing.client`, which needs only `redis`) picks a
model per request by the weights Jarvis sets. `record_usage` and
`record_usage_async` append one request to the ``llm_usage`` table that Jarvis's
cost policy reads; they live in `jarvis.store.usage` and are loaded on first use,
so importing the client never pulls in SQLAlchemy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from jarvis.routing.client import NoWeightsError, RoutingClient

if TYPE_CHECKING:
    from jarvis.store.usage import record_usage, record_usage_async

__all__ = ["NoWeightsError", "RoutingClient", "record_usage", "record_usage_async"]


def __getattr__(name: str) -> Any:
    if name in {"record_usage", "record_usage_async"}:
        from jarvis.store import usage  # noqa: PLC0415 - SQLAlchemy only for callers that record

        return getattr(usage, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
