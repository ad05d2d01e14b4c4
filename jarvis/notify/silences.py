"""Silences as events: `silence.added` / `silence.expired`, and which are active now.

`jarvis silence add|list|expire` writes and reads them; the notifier reads
the same events by cursor and mutes matching alerts (`Grouper.add_silence`).
Keeping silences in the event record, not a table of their own, means every
silence is audited with who, why and until when, and a restart rebuilds them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime, timedelta

from jarvis.model import LONGEST_SILENCE, Event, EventKind
from jarvis.notify.groups import Silence

__all__ = [
    "active_silences",
    "added_event",
    "expired_event",
    "parse_duration",
    "silence_from",
]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
_DURATION = re.compile(r"^(\d+)([smhdw])$")


LONGEST = LONGEST_SILENCE
"""The longest silence (`jarvis.model.LONGEST_SILENCE`)."""


def parse_duration(text: str) -> timedelta:
    """``90s``, ``30m``, ``2h``, ``1d``, ``1w``, up to `LONGEST`; raises ValueError otherwise."""
    match = _DURATION.match(text.strip())
    if match is None or int(match.group(1)) == 0:
        raise ValueError(f"not a duration (want a number and s, m, h, d or w, e.g. 2h): {text!r}")
    seconds = int(match.group(1)) * _UNITS[match.group(2)]
    if seconds > LONGEST.total_seconds():
        raise ValueError(f"at most 52w (a year): {text!r}")
    return timedelta(seconds=seconds)


def silence_from(event: Event) -> Silence:
    payload = event.payload
    return Silence(
        id=str(payload["id"]),
        match=str(payload["match"]),
        until=datetime.fromisoformat(str(payload["until"])),
        reason=event.reason or "",
    )


def added_event(silence: Silence, actor: str, now: datetime) -> Event:
    return Event(
        kind=EventKind.SILENCE_ADDED,
        ts=now,
        idempotency_key=f"silence.added:{silence.id}",
        reason=silence.reason,
        payload={
            "id": silence.id,
            "match": silence.match,
            "until": silence.until.isoformat(),
            "actor": actor,
        },
    )


def expired_event(silence_id: str, actor: str, now: datetime) -> Event:
    return Event(
        kind=EventKind.SILENCE_EXPIRED,
        ts=now,
        idempotency_key=f"silence.expired:{silence_id}",
        reason=f"expired by {actor}",
        payload={"id": silence_id, "actor": actor},
    )


def active_silences(events: Iterable[Event], now: datetime) -> list[Silence]:
    """Silences added and neither expired nor past their end, in the order they were added."""
    silences: dict[str, Silence] = {}
    for event in events:
        if event.kind is EventKind.SILENCE_ADDED:
            silence = silence_from(event)
            silences[silence.id] = silence
        elif event.kind is EventKind.SILENCE_EXPIRED:
            silences.pop(str(event.payload.get("id")), None)
    return [s for s in silences.values() if s.until > now]
