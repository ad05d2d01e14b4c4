"""The `Policy` protocol: a pure function from what is observed to what to change.

Called by the reconciler once per tick with the current snapshot, the history
passed in as data, and ``now`` from the loop's clock. A policy does no I/O,
reads no clock and draws no unseeded randomness; it returns an `Evaluation`
of proposed actions and notes (things worth recording that are not actions,
such as "no metrics for this service, no scaling decision").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from jarvis.model import JSON, Action, History, Snapshot


@dataclass(frozen=True, slots=True)
class Note:
    """Something a policy wants recorded that is not an action.

    ``alert`` notes become `alert` events (and reach notification channels);
    the rest become `policy.note` events.
    """

    message: str
    resource: str | None = None
    alert: bool = False
    key: str = ""
    """Distinguishes notes for idempotency; the same key in one tick is one event."""
    payload: dict[str, JSON] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Evaluation:
    actions: tuple[Action, ...] = ()
    notes: tuple[Note, ...] = ()


class Policy(Protocol):
    @property
    def name(self) -> str: ...

    def evaluate(self, snapshot: Snapshot, history: History, now: datetime) -> Evaluation: ...
