"""Reading the event store by id cursor: what `jarvis events --follow` and the notifier share.

Ids are the order rows arrived in, so "everything after the last id I saw"
is the whole protocol; a reader keeps its cursor where it likes (the CLI in
memory, the notifier in the `notify_state` table).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

from jarvis.model import Event
from jarvis.store.events import EventStore

__all__ = ["follow", "newer"]


async def newer(
    store: EventStore,
    after_id: int | None,
    *,
    kinds: Sequence[str] | None = None,
    resource: str | None = None,
    limit: int = 500,
) -> list[Event]:
    """Up to ``limit`` events after ``after_id``, oldest first (the last ``limit`` when None)."""
    if after_id is None:
        return await store.events(limit=limit, kinds=kinds, resource=resource)
    return await store.events(limit=limit, kinds=kinds, resource=resource, after_id=after_id)


async def follow(
    store: EventStore,
    after_id: int | None,
    sleep: Callable[[float], Awaitable[None]],
    *,
    kinds: Sequence[str] | None = None,
    resource: str | None = None,
    poll: float = 1.0,
) -> AsyncIterator[list[Event]]:
    """Batches of new events, forever, polling every ``poll`` seconds."""
    last = after_id
    while True:
        await sleep(poll)
        batch = await newer(store, last, kinds=kinds, resource=resource)
        if batch:
            last = batch[-1].id
            yield batch
