"""The failover policy: move DNS weight away from a region or cloud whose endpoints fail, and back.

Called by the reconciler each tick, like every policy, with the snapshot and the
recent snapshots as history; pure. For every configured group (one weighted DNS
name, observed as ``route53://ZONE/NAME/TYPE`` with its records' weights in the
``dns_weights`` facet) it judges each target from the endpoint probes it names:

- **bad** this tick when one of its endpoints is UNHEALTHY, or when none is
  unhealthy but not all are healthy and its provider's sensor (the second
  signal) failed to observe; **good** when all its endpoints are HEALTHY;
  otherwise unknown (a probe not yet unhealthy, an endpoint missing).
- **failed** after ``fail_ticks`` consecutive bad ticks: its weight goes to 0.
- **held** when it carries less than its configured weight, has not failed, and
  has not yet been good for ``recover_ticks`` consecutive ticks: nothing moves
  it. This is the hysteresis: weight that left a target comes back only after
  it has been good long enough, and a target that flickers neither loses nor
  regains weight on a single tick.
- otherwise **in service**: toward its configured weight. When no target left in
  service would carry weight (an active/passive pair whose primary failed), the
  good ones share the failed targets' weight.

Each step moves a record by at most ``max_shift`` (the guard's
``bounds.max_dns_weight_shift``), and is taken only if some target is good now.
A step never raises the weight of a target that is not good now, and is not
taken if it would leave no good target with weight (so never all 0s). When
every target has failed, nothing changes and one critical alert says so (once,
when it starts; resolved once, when a target stops failing). Targets are
recomputed from configuration every tick: level-triggered. The consecutive
ticks are counted over ``history.snapshots``, so the reconciler must keep at
least `FailoverPolicy.snapshots_needed` of them. A restart leaves fewer: while
the group's last recorded alert (`History.alerts`) says every target is
failing, a target bad in every tick since counts as failed still, so the alert
is neither raised again nor left unresolved.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from jarvis.model import Action, Event, Health, History, ResourceRef, SetDnsWeights, Snapshot
from jarvis.policies.base import Evaluation, Note

__all__ = ["FailoverGroup", "FailoverPolicy", "FailoverTarget", "Signal", "signal", "step"]

MAX_WEIGHT = 255


class Signal(enum.Enum):
    """What one tick says about a target (`signal`)."""

    GOOD = "good"
    BAD = "bad"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class FailoverTarget:
    """One weighted record: its set identifier, configured weight and what judges it."""

    set_identifier: str
    weight: int
    endpoints: tuple[str, ...]
    """Endpoint URIs (``endpoint://NAME``)."""
    sensor: str | None = None
    """The sensor whose failed observe is the second signal."""


@dataclass(frozen=True, slots=True)
class FailoverGroup:
    uri: str
    """The records' resource, ``route53://ZONE/NAME/TYPE``."""
    targets: tuple[FailoverTarget, ...]


def signal(target: FailoverTarget, snapshot: Snapshot) -> Signal:
    """What this tick says about ``target`` (see the module docstring)."""
    states = [snapshot.get(uri) for uri in target.endpoints]
    if any(s is not None and s.health is Health.UNHEALTHY for s in states):
        return Signal.BAD
    if all(s is not None and s.health is Health.HEALTHY for s in states):
        return Signal.GOOD
    if target.sensor is not None and target.sensor in snapshot.errors:
        return Signal.BAD
    return Signal.UNKNOWN


def _streak(seen: Sequence[Signal], wanted: Signal) -> int:
    """How many of the latest signals in ``seen`` (oldest first) are ``wanted``, in a row."""
    count = 0
    for judged in reversed(seen):
        if judged is not wanted:
            break
        count += 1
    return count


def step(
    current: Mapping[str, int],
    desired: Mapping[str, int],
    good: frozenset[str],
    max_shift: int,
) -> dict[str, int]:
    """One bounded move from ``current`` toward ``desired`` that keeps the safety rules.

    Only good records gain weight; if the good records carried weight before,
    some good record still does after (their decreases are undone otherwise).
    """
    out: dict[str, int] = {}
    for record, now in current.items():
        want = desired.get(record, now)
        if want > now and record not in good:
            want = now
        out[record] = now + max(-max_shift, min(max_shift, want - now))
    if any(current[r] > 0 for r in good) and not any(out[r] > 0 for r in good):
        for record in good:
            out[record] = max(out[record], current[record])
    return out


class FailoverPolicy:
    """Shifts DNS weight between targets by their probes, with hysteresis (module docstring)."""

    name = "failover"

    def __init__(
        self,
        groups: Sequence[FailoverGroup],
        *,
        fail_ticks: int = 3,
        recover_ticks: int = 5,
        max_shift: int = 128,
    ) -> None:
        if fail_ticks < 1 or recover_ticks < 1 or max_shift < 1:
            raise ValueError("fail_ticks, recover_ticks and max_shift must be at least 1")
        self._groups = tuple(groups)
        self._fail = fail_ticks
        self._recover = recover_ticks
        self._max_shift = max_shift

    @property
    def max_shift(self) -> int:
        """The largest move of one record's weight in one step."""
        return self._max_shift

    @property
    def snapshots_needed(self) -> int:
        """History the streaks read: the previous tick's judgement needs one more than a streak."""
        return max(self._fail, self._recover) + 1

    def evaluate(self, snapshot: Snapshot, history: History, now: datetime) -> Evaluation:  # noqa: ARG002 -- the Policy signature; time is the ticks in history
        actions: list[Action] = []
        notes: list[Note] = []
        # Only as far back as a streak reads: the loop may keep many more.
        ticks = [*history.snapshots[-self.snapshots_needed :], snapshot]
        alerted = _open_alerts(history.alerts, self.name)
        for group in self._groups:
            action, note = self._group(group, ticks, group.uri in alerted)
            if action is not None:
                actions.append(action)
            if note is not None:
                notes.append(note)
        return Evaluation(actions=tuple(actions), notes=tuple(notes))

    def _failed(self, seen: Mapping[str, Sequence[Signal]], alerted: bool) -> set[str]:
        """The targets bad for ``fail_ticks`` in a row, or, ``alerted`` (all failing as last
        recorded), bad in every tick seen: fewer than that after a restart."""
        return {
            r
            for r, judged in seen.items()
            if (streak := _streak(judged, Signal.BAD)) >= self._fail
            or (alerted and streak == len(judged))
        }

    def _group(
        self, group: FailoverGroup, ticks: Sequence[Snapshot], alerted: bool
    ) -> tuple[Action | None, Note | None]:
        state = ticks[-1].get(group.uri)
        if state is None or state.dns_weights is None:
            return None, None  # not observed this tick: the observe failure is recorded
        current = dict(state.dns_weights.weights)
        missing = _missing(group, current)
        if missing:
            return None, _missing_note(group, ticks, missing)
        # Each target judged in every tick once, oldest first: the streaks read these.
        seen = {t.set_identifier: [signal(t, tick) for tick in ticks] for t in group.targets}
        failed = self._failed(seen, alerted)
        alert = self._all_failed_change(group, seen, failed, alerted)
        if len(failed) == len(group.targets):
            return None, alert
        return self._move(group, state.ref, seen, current, failed), alert

    def _move(
        self,
        group: FailoverGroup,
        ref: ResourceRef,
        seen: Mapping[str, Sequence[Signal]],
        current: dict[str, int],
        failed: set[str],
    ) -> Action | None:
        signals = {r: judged[-1] for r, judged in seen.items()}
        good = frozenset(r for r, s in signals.items() if s is Signal.GOOD)
        if not good:
            return None  # nowhere healthy to move weight to
        desired = self._desired(group, seen, current, failed, good)
        proposed = step(current, desired, good, self._max_shift)
        if proposed == current or not any(proposed[r] for r in good):
            # Nothing to do, or a write that would leave every healthy target
            # without answers: better none until a step can keep one.
            return None
        return Action(
            target=ref,
            params=SetDnsWeights(record_weights=proposed),
            policy=self.name,
            reason=_reason(current, proposed, failed, signals),
        )

    def _all_failed_change(
        self,
        group: FailoverGroup,
        seen: Mapping[str, Sequence[Signal]],
        failed: set[str],
        alerted: bool,
    ) -> Note | None:
        """An alert on the tick every target has failed, its resolution on the tick one has not.

        Once each: the previous tick's judgement, from the same history, says
        whether it already fired (on the first tick after a start, the last
        recorded alert says it).
        """
        everyone = len(group.targets)
        earlier = {r: judged[:-1] for r, judged in seen.items()}
        before = len(self._failed(earlier, alerted)) == everyone
        now = len(failed) == everyone
        if before == now:
            return None
        if now:
            message = f"failover: every target of {group.uri} is failing; weights left as they are"
        else:
            message = f"failover: a target of {group.uri} is no longer failing"
        return Note(
            message,
            resource=group.uri,
            alert=True,
            key=f"failover-all-failed:{group.uri}",
            payload={
                "cause": "failover",
                "severity": "critical",
                "failed": sorted(failed),
                **({} if now else {"resolved": True}),
            },
        )

    def _desired(
        self,
        group: FailoverGroup,
        seen: Mapping[str, Sequence[Signal]],
        current: Mapping[str, int],
        failed: set[str],
        good: frozenset[str],
    ) -> dict[str, int]:
        desired: dict[str, int] = {}
        serving: list[str] = []
        for target in group.targets:
            record = target.set_identifier
            if record in failed:
                desired[record] = 0
            elif (
                current[record] < target.weight
                and _streak(seen[record], Signal.GOOD) < self._recover
            ):
                desired[record] = current[record]  # held: not yet good long enough
            else:
                desired[record] = target.weight
                serving.append(record)
        # What the failed and held targets miss of their weight; when no target
        # left would carry any (a standby whose configured weight is 0, or a
        # held one at 0), the good ones share it, those in service first, so
        # answers go somewhere healthy.
        shortfall = sum(max(0, t.weight - desired[t.set_identifier]) for t in group.targets)
        takers = [r for r in serving if r in good] or sorted(good - failed)
        if shortfall and takers and not any(desired[r] for r in desired if r not in failed):
            share = min(MAX_WEIGHT, math.ceil(shortfall / len(takers)))
            for record in takers:
                desired[record] = share
        return desired


def _open_alerts(alerts: Sequence[Event], policy: str) -> set[str]:
    """The groups whose last recorded all-failed alert is open (not resolved), by URI.

    One pass over the alerts for every group, not one per group: a group's only
    alerts are these (`_all_failed_change`), and the newest of each counts.
    """
    last: dict[str, Event] = {}
    for event in alerts:
        if event.policy == policy and event.resource is not None:
            last[event.resource] = event
    return {uri for uri, event in last.items() if event.payload.get("resolved") is not True}


def _missing(group: FailoverGroup, weights: Mapping[str, int]) -> list[str]:
    return sorted(t.set_identifier for t in group.targets if t.set_identifier not in weights)


def _missing_note(
    group: FailoverGroup, ticks: Sequence[Snapshot], missing: list[str]
) -> Note | None:
    """A note when the zone first lacks a configured record, not every tick while it does."""
    previous = ticks[-2].get(group.uri) if len(ticks) > 1 else None
    held = None if previous is None else previous.dns_weights
    if held is not None and _missing(group, held.weights) == missing:
        return None
    return Note(
        f"failover: {group.uri} has no weighted record for {', '.join(missing)}",
        resource=group.uri,
        key=f"failover-missing:{group.uri}",
    )


def _reason(
    current: Mapping[str, int],
    proposed: Mapping[str, int],
    failed: set[str],
    signals: Mapping[str, Signal],
) -> str:
    moves = ", ".join(
        f"{r} {current[r]}→{proposed[r]}" for r in sorted(proposed) if proposed[r] != current[r]
    )
    judged = ", ".join(
        f"{r} {'failed' if r in failed else signals[r].value}" for r in sorted(signals)
    )
    return f"weights {moves} ({judged})"
