"""The invariant ``stale_epoch``: nothing applied under an epoch a newer one had replaced.

Fed by the checker (`jarvis.simulation.invariants`) with every event, in id
order. A leader names its replica and epoch in every event it writes
(`jarvis.loop.reconciler.Reconciler.act_as`); an event without them comes
from a single node and is not this invariant's business. From the record
alone: epoch ``e'`` began no later than the first event written under it, so
an ``action.started`` or ``action.applied`` under ``e < e'`` timed after that
moment is an action a stale leader took, which fencing must have refused.
Events arrive by id, not by time (a spool replays late), so both orders are
checked: a stale action after a newer epoch's first event, and a newer
epoch's first event before an older epoch's last action. One epoch must also
belong to one replica.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

from jarvis.model import Event, EventKind

NAME = "stale_epoch"
_ACTS = frozenset({EventKind.ACTION_STARTED, EventKind.ACTION_APPLIED})


@dataclass
class EpochWatch:
    checks: int = 0
    _began: dict[int, datetime] = field(default_factory=dict)
    """Each epoch's earliest event."""
    _last_act: dict[int, Event] = field(default_factory=dict)
    """Each epoch's latest action (started or applied), by time."""
    _holder: dict[int, str] = field(default_factory=dict)

    def feed(self, event: Event) -> Iterator[tuple[str, Event]]:
        """The problems ``event`` shows, as (message, event)."""
        epoch, replica = event.payload.get("epoch"), event.payload.get("replica")
        if not isinstance(epoch, int) or not isinstance(replica, str):
            return
        holder = self._holder.setdefault(epoch, replica)
        if holder != replica:
            yield f"epoch {epoch} written by both {holder} and {replica}", event
        if event.kind in _ACTS:
            self.checks += 1
            newer = [e for e, t in self._began.items() if e > epoch and t < event.ts]
            if newer:
                yield (
                    (
                        f"{event.kind.value} {event.action_kind} on {event.resource} under epoch "
                        f"{epoch} of {replica}, after epoch {max(newer)} began"
                    ),
                    event,
                )
            last = self._last_act.get(epoch)
            if last is None or last.ts < event.ts:
                self._last_act[epoch] = event
        began = self._began.get(epoch)
        if began is None or event.ts < began:
            self._began[epoch] = event.ts
            for older, act in self._last_act.items():
                if older < epoch and act.ts > event.ts:
                    yield (
                        (
                            f"{act.kind.value} {act.action_kind} on {act.resource} under epoch "
                            f"{older} at {act.ts.isoformat()}, after epoch {epoch} began"
                        ),
                        act,
                    )
