"""The spool: a JSON-lines file where events wait while the database is away.

Owned by `EventStore`: a failed flush appends its events here, the next flush
that reaches the database replays them first, in order, and truncates the file
after the commit. A crash between commit and truncation only causes a replay
that the unique idempotency key turns into a no-op. Methods block on file I/O;
the store calls them in a worker thread.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from jarvis.model import Event
from jarvis.store.codec import event_from_json, event_to_json
from jarvis.store.errors import StoreError

__all__ = ["Spool"]


class Spool:
    """Events waiting in one file, oldest first; `count` is kept without rereading."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = self._repair_and_count()

    def _repair_and_count(self) -> int:
        """Cut a torn last line (a crash mid-write) and count the whole ones."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return 0
        except OSError as exc:
            raise StoreError(f"cannot read spool file {self.path}: {exc}") from exc
        whole = data[: data.rfind(b"\n") + 1]
        if len(whole) != len(data):
            with self.path.open("r+b") as handle:
                handle.truncate(len(whole))
                os.fsync(handle.fileno())
        return whole.count(b"\n")

    def append(self, events: Sequence[Event]) -> None:
        """Write events durably (flushed and fsynced) after those already waiting.

        Raises TypeError/ValueError for an event that cannot be JSON (a bug), and
        StoreError when the file cannot be written.
        """
        if not events:
            return
        text = "".join(event_to_json(event) + "\n" for event in events)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            raise StoreError(f"cannot write spool file {self.path}: {exc}") from exc
        self.count += len(events)

    def read(self) -> list[Event]:
        """Every waiting event, oldest first."""
        if self.count == 0:
            return []
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise StoreError(f"cannot read spool file {self.path}: {exc}") from exc
        out: list[Event] = []
        for number, line in enumerate(lines, start=1):
            try:
                out.append(event_from_json(line))
            except (ValueError, KeyError, TypeError) as exc:
                raise StoreError(f"spool file {self.path} line {number} is damaged: {exc}") from exc
        return out

    def clear(self) -> None:
        """Empty the file once its events are committed."""
        if self.count == 0:
            return
        try:
            with self.path.open("r+b") as handle:
                handle.truncate(0)
                os.fsync(handle.fileno())
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise StoreError(f"cannot truncate spool file {self.path}: {exc}") from exc
        self.count = 0
