"""Replaying the spool into the backend: a chunk per transaction, bad lines set aside.

Called by `EventStore.flush` (`jarvis.store.events`) before it writes its own
batch, so spooled events land first and in order. Each chunk is committed
before the spool's cursor moves past it (`jarvis.store.spool`). A chunk the
database refuses as wrong (not as away) is written line by line, and the
lines it refuses are set aside with the unreadable ones: one bad line must
not stop every flush after it. An operational failure (the database away
again) is raised, and the rest waits for the next flush.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from jarvis.model import Event, RetryState
from jarvis.store.backend import EventBackend
from jarvis.store.errors import describe, is_operational
from jarvis.store.spool import Spool
from jarvis.store.spool_lines import encode_lines

__all__ = ["replay"]

InThread = Callable[..., Awaitable[Any]]


async def replay(backend: EventBackend, spool: Spool, in_thread: InThread) -> tuple[int, int]:
    """Commit what the spool holds; return (events replayed, lines set aside).

    ``in_thread`` runs the spool's blocking file I/O off the event loop.
    """
    replayed = dead = 0
    while spool.pending:
        chunk = await in_thread(spool.head)
        events: list[tuple[bytes, str]] = []
        rows: list[tuple[bytes, str]] = []
        if chunk.events or chunk.retries:
            try:
                await backend.write(chunk.events, chunk.retries)
            except Exception as exc:
                if is_operational(exc):
                    raise
                events, rows = await _one_by_one(backend, chunk.events, chunk.retries)
        await in_thread(spool.advance, chunk, [*events, *rows])
        replayed += len(chunk.events) - len(events)
        dead += len(chunk.dead) + len(events) + len(rows)
    return replayed, dead


async def _one_by_one(
    backend: EventBackend, events: Sequence[Event], retries: Sequence[RetryState]
) -> tuple[list[tuple[bytes, str]], list[tuple[bytes, str]]]:
    """Write each event and row in its own transaction; return the refused ones as lines."""
    refused_events: list[tuple[bytes, str]] = []
    for event in events:
        try:
            await backend.write([event], [])
        except Exception as exc:
            if is_operational(exc):
                raise
            refused_events.append((_line([event], []), _REFUSED + describe(exc)))
    refused_rows: list[tuple[bytes, str]] = []
    for state in retries:
        try:
            await backend.write([], [state])
        except Exception as exc:
            if is_operational(exc):
                raise
            refused_rows.append((_line([], [state]), _REFUSED + describe(exc)))
    return refused_events, refused_rows


_REFUSED = "refused by the database: "


def _line(events: list[Event], retries: list[RetryState]) -> bytes:
    """The spool line of an item the database refused, for the dead-letter file."""
    try:
        return encode_lines(events, retries)
    except (TypeError, ValueError):
        return repr((*events, *retries)).encode("utf-8", "backslashreplace") + b"\n"
