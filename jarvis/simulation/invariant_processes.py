"""The process faults' invariants, judged from the record and the witnesses.

`jarvis.simulation.invariants.InvariantChecker` hands this watch what the
process faults (`jarvis.simulation.process_faults`) leave behind:

- ``restart``: after the daemon was killed in a database outage and started
  again, no intent stays open in the store once the spool has replayed (the
  new process closed its predecessor's orphans, and every attempt of its own
  has an outcome). The retry limit across the kill is the ``retry_budget``
  invariant's, counted from the record as always: the attempts the killed
  process made while the database was away reach it through the spool.
- ``second_process``: a one-shot ``plan`` or dry-run ``tick`` beside the
  daemon applies nothing (its own provider's witness is empty), records no
  intent or outcome (events whose tick id names its run), and ``plan`` leaves
  the event count as it found it.

The kill-switch side of a Redis restarted empty is the ``killswitch``
invariant's (the witness stays engaged from the engage to the next release,
whatever Redis holds); this watch only counts the ticks it covered.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from jarvis.model import Event, EventKind
from jarvis.simulation.invariant_records import ProviderCall

RESTART = "restart"
SECOND_PROCESS = "second_process"
_ACTING = frozenset(
    {
        EventKind.ACTION_STARTED,
        EventKind.ACTION_APPLIED,
        EventKind.ACTION_FAILED,
        EventKind.ACTION_UNKNOWN,
    }
)


@dataclass
class ProcessWatch:
    one_shot_runs: set[str] = field(default_factory=set)
    """Run ids of the one-shot processes: none of them holds the loop."""
    awaiting_restart: bool = False
    """The daemon restarted; its store is asked for open intents at the next settled tick."""
    problems: list[tuple[str, str, Event | None]] = field(default_factory=list)
    checks: dict[str, int] = field(default_factory=lambda: {RESTART: 0, SECOND_PROCESS: 0})

    def event(self, event: Event) -> None:
        """An action recorded under a one-shot's tick id was taken by a non-owner."""
        if event.kind not in _ACTING or event.tick_id is None:
            return
        _, _, run_id = event.tick_id.partition("Z-")
        if run_id in self.one_shot_runs:
            self.problems.append(
                (
                    SECOND_PROCESS,
                    f"{event.kind.value} for {event.action_kind} on {event.resource} recorded "
                    f"by {run_id}, which does not hold the loop",
                    event,
                )
            )

    def one_shot_done(self, run_id: str, calls: Iterable[ProviderCall], *, wrote: int) -> None:
        self.checks[SECOND_PROCESS] += 1
        for call in calls:
            if call.action is not None:
                self.problems.append(
                    (
                        SECOND_PROCESS,
                        f"the provider received {call.action.kind} on {call.action.target} "
                        f"from {run_id}, which does not hold the loop",
                        None,
                    )
                )
        if wrote:
            self.problems.append(
                (SECOND_PROCESS, f"{run_id} (`jarvis plan`) wrote {wrote} events", None)
            )

    def open_after_restart(self, intents: Iterable[Event]) -> None:
        """Intents the store still holds open after the restarted daemon settled."""
        self.awaiting_restart = False
        self.checks[RESTART] += 1
        for intent in intents:
            self.problems.append(
                (
                    RESTART,
                    f"intent {intent.action_id} ({intent.action_kind} on {intent.resource}) "
                    "is still open after the restart",
                    intent,
                )
            )
