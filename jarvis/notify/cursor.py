"""The notifier's place in the event record, held at a gap until the gap is surely permanent.

Ids come from one sequence but commit in any order: when the daemon's flush
and a CLI command (`retries reset`, `silence add`) write at the same moment,
the later id can be visible before the earlier one. A reader that jumped
past the missing id would never see that event, and an escalation would
never page. So the cursor stops at a gap and waits; a gap still open after
``grace`` is a permanent one (a rolled-back transaction, an insert skipped
by its idempotency key) and is stepped over. Pure; used by `Notifier.consume`.
The grace is measured on the monotonic clock (`Clock.monotonic`): on the wall
clock, a gap seen just before it stepped back an hour would hold every
notification for that hour.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from jarvis.model import Event

__all__ = ["Cursor"]


@dataclass
class Cursor:
    position: int
    """The id of the last event consumed (0 before any)."""
    grace: timedelta = timedelta(seconds=15)
    _gap_at: int | None = None
    _gap_since: float | None = None

    def accept(self, events: Sequence[Event], now: float) -> tuple[list[Event], bool]:
        """The leading run of ``events`` to consume now (``now``: `Clock.monotonic`), and
        whether a young gap stopped it."""
        taken: list[Event] = []
        for event in events:
            event_id = event.id or 0
            expected = self.position + 1
            if event_id > expected:
                if self._gap_at != expected or self._gap_since is None:
                    self._gap_at, self._gap_since = expected, now
                if now - self._gap_since < self.grace.total_seconds():
                    return taken, True
            taken.append(event)
            self.position = max(self.position, event_id)
        return taken, False
