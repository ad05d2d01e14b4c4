"""What one tick did, as the reconciler returns it to its callers.

`Reconciler.tick()` (`jarvis.loop.reconciler`, which re-exports both names)
fills a `TickReport`; the CLI prints it, the simulation harness and the tests
read it. Nothing here is recorded: the events are the record.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from jarvis.model import Action, Outcome, Snapshot, Verdict
from jarvis.policies.base import Note


@dataclass(frozen=True, slots=True)
class Decision:
    """What became of one planned action in a tick."""

    action: Action
    verdict: Verdict
    outcome: Outcome | None = None


@dataclass(slots=True)
class TickReport:
    tick_id: str
    started_at: datetime
    snapshot: Snapshot
    proposals: list[Action] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    notes: list[tuple[str, Note]] = field(default_factory=list)
    escalations: list[str] = field(default_factory=list)
    finished_at: datetime | None = None
    asked_later: list[str] = field(default_factory=list)
    """Action ids of this tick's unknown outcomes the loop goes on asking the provider
    about (`jarvis.loop.unknowns`): their actuator can prove a change made."""

    @property
    def applied(self) -> list[Decision]:
        return [d for d in self.decisions if d.outcome is not None and d.outcome.ok]
