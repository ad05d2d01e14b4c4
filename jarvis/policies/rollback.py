"""The rollback policy: watch each new version and return to the last known good one.

Called by the reconciler once per tick, like every `Policy`. For each resource
with a version whose URI matches the configured globs, it reads the version
history from `History.events` (`jarvis.policies.rollouts`) and proposes a
ROLLBACK (priority above scaling) when the rollout failed outright, or when,
inside the watch window, the new version is unhealthy, crash-looping, never
became ready, or its error rate or p95 latency stayed worse than the previous
version's baseline (from `History.snapshots`) for N consecutive checks, the
way Argo Rollouts and Flagger judge a canary.

It never targets the running version or one already rolled back as bad, and
raises an alert note when a rollback of the resource failed, was escalated, or
had no known outcome (the call timed out, or the process ended mid-apply).
The composition root builds it with `RollbackPolicy.from_config`, passing
``settings.rollback.model_dump()``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from statistics import fmean
from typing import Any

from jarvis.model import (
    Action,
    Event,
    EventKind,
    Health,
    History,
    Metric,
    ResourceState,
    Rollback,
    RolloutState,
    Snapshot,
    globs,
)
from jarvis.policies.base import Evaluation, Note, usable_reading
from jarvis.policies.rollouts import RolloutHistory, RolloutIndex, VersionChange

#: A rollback beats a scale-up (or any scaling) proposed for the same resource.
ROLLBACK_PRIORITY = 100

ERROR_RATE = Metric.ERROR_RATE
P95 = Metric.P95_LATENCY_MS

_UNHEALTHY = Health.UNHEALTHY
_FAILED = RolloutState.FAILED
_ESCALATED = EventKind.ACTION_ESCALATED


class RollbackPolicy:
    """Proposes ROLLBACK actions to the last known good version of a failing rollout."""

    def __init__(
        self,
        *,
        match: Sequence[str] = ("*",),
        watch_seconds: float = 900.0,
        ready_timeout_seconds: float = 600.0,
        consecutive_checks: int = 3,
        error_rate_margin: float = 0.02,
        latency_margin: float = 0.25,
        min_baseline_samples: int = 2,
        priority: int = ROLLBACK_PRIORITY,
        name: str = "rollback",
    ) -> None:
        if watch_seconds <= 0 or ready_timeout_seconds <= 0:
            raise ValueError("watch_seconds and ready_timeout_seconds must be positive")
        if consecutive_checks < 1 or min_baseline_samples < 1:
            raise ValueError("consecutive_checks and min_baseline_samples must be at least 1")
        if error_rate_margin < 0 or latency_margin < 0:
            raise ValueError("margins must not be negative")
        self._match = tuple(match)
        self._watch = timedelta(seconds=watch_seconds)
        self._ready_timeout = timedelta(seconds=ready_timeout_seconds)
        self._checks = consecutive_checks
        self._error_margin = error_rate_margin
        self._latency_margin = latency_margin
        self._min_samples = min_baseline_samples
        self._priority = priority
        self._name = name
        # Memos, not state: the answers are the same without them. Each
        # resource's version history, kept in step with `History.events`; and
        # whether a URI matches the globs, cleared when it outgrows the fleet.
        self._rollouts = RolloutIndex()
        self._matches: dict[str, bool] = {}

    history_horizon = timedelta(hours=24)
    """How far back this policy reads `History.events` (each resource's versions):
    the loop loads that much of the record at start (`jarvis.model.EventHistory`)."""

    @property
    def name(self) -> str:
        return self._name

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> RollbackPolicy:
        """Build from ``RollbackSettings.model_dump()`` (or the same keys as plain data)."""
        options = dict(config)
        options.pop("enabled", None)
        if "match" in options:
            options["match"] = tuple(options["match"])
        return cls(**options)

    def evaluate(self, snapshot: Snapshot, history: History, now: datetime) -> Evaluation:
        last_tick = history.snapshots[-1].taken_at if history.snapshots else None
        resources = snapshot.resources
        self._rollouts.update(history.events)
        matches = self._matches
        if len(matches) > 2 * len(resources) + 1024:
            matches.clear()
        history_of = self._rollouts.history
        # Judged in URI order, but only the few that need it are sorted: most
        # resources, most ticks, fall out of this pass at a check or two.
        judged: list[tuple[str, ResourceState, RolloutHistory]] = []
        for uri, state in resources.items():
            if state.version is None:
                continue
            matched = matches.get(uri)
            if matched is None:
                matched = matches[uri] = any(globs.matches(uri, g) for g in self._match)
            if not matched:
                continue
            past = history_of(uri)
            if past is None:
                # With no events there is no version change to watch and no failed
                # rollback to report: only a rollout the provider calls failed
                # can count, so the quiet majority skips the full judgement.
                if state.rollout is None or state.rollout.state is not _FAILED:
                    continue
                past = RolloutHistory(uri=uri)
            elif (
                not past.rollback_failures
                and str(state.version) not in past.changes
                and (state.rollout is None or state.rollout.state is not _FAILED)
            ):
                # No failed rollback to report, no change of the running version
                # to watch, no failed rollout: `_judge` would find nothing, and
                # most services are in this state most ticks.
                continue
            judged.append((uri, state, past))
        actions: list[Action] = []
        notes: list[Note] = []
        for _, state, past in sorted(judged, key=_first):
            action, found = self._judge(state, past, history, now, last_tick)
            if action is not None:
                actions.append(action)
            notes.extend(found)
        return Evaluation(actions=tuple(actions), notes=tuple(notes))

    def _judge(
        self,
        state: ResourceState,
        past: RolloutHistory,
        history: History,
        now: datetime,
        last_tick: datetime | None,
    ) -> tuple[Action | None, list[Note]]:
        uri = past.uri
        running = str(state.version)
        change = past.changes.get(running)
        failures = (
            past.failures_since(change.at if change else now - self._watch)
            if past.rollback_failures
            else []
        )
        notes = [
            Note(
                message=f"{uri}: rollback {_verb(event.kind)}: {_detail(event)}",
                resource=uri,
                alert=True,
                key=f"{self._name}:failed:{uri}:{event.idempotency_key}",
                payload={"event": event.kind.value, "running": running},
            )
            for event in failures
            # Once, in the tick after it happened (virtual clocks give it the tick's own time).
            if last_tick is None or event.ts >= last_tick
        ]
        why = self._failure(state, change, now) or self._regression(state, change, history, now)
        if why is None:
            return None, notes
        if change is not None and change.restored:
            # Rolling back again would reach ever older versions (schemas, config)
            # on what may be a passing fault; Argo Rollouts and Flagger do not
            # judge the stable version they return to either. A human decides.
            message = f"{why}; {running} is the version rolled back to; not rolling back further"
            notes.append(self._note(uri, "restored", message, alert=True))
            return None, notes
        if any(event.kind is _ESCALATED for event in failures):
            notes.append(self._note(uri, "escalated", f"{why}; rollback escalated, not retrying"))
            return None, notes
        target = self._target(state, past)
        if target is None:
            message = f"{why}; no known good version to roll back to"
            notes.append(self._note(uri, "no-target", message, alert=True))
            return None, notes
        version, provenance = target
        reason = f"roll back {running} → {version} ({provenance}): {why}"
        action = Action(
            target=state.ref,
            params=Rollback(version),
            policy=self._name,
            reason=reason,
            priority=self._priority,
        )
        return action, notes

    def _failure(
        self, state: ResourceState, change: VersionChange | None, now: datetime
    ) -> str | None:
        """Why the rollout failed outright, if it did."""
        rollout = None if state.rollout is None else state.rollout.state
        if rollout is _FAILED:
            return f"rollout of {state.version} failed{_suffix(state)}"
        if change is None:
            return None
        age = now - change.at
        if rollout is RolloutState.IN_PROGRESS and age > self._ready_timeout:
            return f"{state.version} not ready {_secs(age)} after the change{_suffix(state)}"
        problem = None
        if state.health is _UNHEALTHY:
            problem = "unhealthy"
        elif state.rollout is not None and state.rollout.crash_looping:
            problem = "crash-looping"
        if problem is None or age > self._watch:
            return None
        return f"{state.version} {problem} {_secs(age)} after the change{_suffix(state)}"

    def _regression(
        self, state: ResourceState, change: VersionChange | None, history: History, now: datetime
    ) -> str | None:
        """Which metric stayed worse than the previous version's for N checks, if any."""
        if change is None or now - change.at > self._watch:
            return None
        uri = str(state.ref)
        known = None if state.versions is None else state.versions.previous
        baseline_version = change.previous or known
        recent = [state]
        for past in reversed(history.snapshots):
            if len(recent) >= self._checks:
                break
            seen = past.resources.get(uri)
            if seen is None or seen.version != state.version:
                break
            recent.append(seen)
        if len(recent) < self._checks:
            return None
        baseline = [
            seen
            for past in history.snapshots
            if (seen := past.resources.get(uri)) is not None and seen.version == baseline_version
        ]
        for metric in (ERROR_RATE, P95):
            # An error rate of 0 is a baseline; a p95 of 0 ms measured no request.
            samples = [
                value
                for seen in baseline
                if usable_reading(value := seen.metrics.get(metric))
                and (value > 0 or metric == ERROR_RATE)
            ]
            if len(samples) < self._min_samples:
                continue
            base = fmean(samples)
            limit = (
                base + self._error_margin
                if metric == ERROR_RATE
                else base * (1 + self._latency_margin)
            )
            values = [seen.metrics.get(metric) for seen in recent]
            if all(value is not None and value > limit for value in values):
                shown = ", ".join(f"{value:.4g}" for value in reversed(values) if value is not None)
                return (
                    f"{metric} {shown} over {self._checks} checks, worse than {baseline_version}'s "
                    f"{base:.4g} (limit {limit:.4g})"
                )
        return None

    def _target(self, state: ResourceState, past: RolloutHistory) -> tuple[str, str] | None:
        """The version to return to, and where the policy learnt it was good."""
        versions = state.versions
        available = () if versions is None else versions.available
        allowed = set(available) if available else None
        previous = None if versions is None else versions.previous
        candidates = [(version, "last known good") for version in reversed(past.good)]
        if previous:
            candidates.append((previous, "previous version, not seen healthy in history"))
        for version, provenance in candidates:
            if version == state.version or version in past.bad:
                continue
            if allowed is not None and version not in allowed:
                continue
            return version, provenance
        return None

    def _note(self, uri: str, why: str, message: str, *, alert: bool = False) -> Note:
        return Note(
            message=f"{uri}: {message}", resource=uri, alert=alert, key=f"{self._name}:{why}:{uri}"
        )


def _first(item: tuple[str, ResourceState, RolloutHistory]) -> str:
    return item[0]


def _detail(event: Event) -> str:
    """What the outcome said; recovery's unknown says nothing there, its reason says why."""
    detail = event.payload.get("detail")
    if detail is None and event.kind is EventKind.ACTION_UNKNOWN:
        return event.reason or ""
    return "" if detail is None else str(detail)


def _verb(kind: EventKind) -> str:
    if kind is EventKind.ACTION_UNKNOWN:
        return "outcome unknown"
    return "escalated" if kind is _ESCALATED else "failed"


def _suffix(state: ResourceState) -> str:
    """The provider's detail, in brackets, for a reason (built only when one is given)."""
    reason = None if state.rollout is None else state.rollout.reason
    detail = reason or state.detail
    return f" ({detail})" if detail else ""


def _secs(delta: timedelta) -> str:
    return f"{delta.total_seconds():.0f} s"
