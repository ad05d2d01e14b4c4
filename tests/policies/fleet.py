"""Builders for policy tests: services, snapshots, events, and a tiny tick driver.

The driver plays the reconciler's part for one service (observe, evaluate,
apply the proposed replica count, keep the last 20 snapshots as history) so
scaling traces run in virtual time without the real loop.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from jarvis.model import (
    ActionKind,
    Event,
    EventKind,
    Health,
    History,
    Replicas,
    ResourceRef,
    ResourceState,
    Rollout,
    RolloutState,
    Snapshot,
    Versions,
)
from jarvis.policies.base import Evaluation, Policy
from tests import actions as typed

T0 = datetime(2026, 1, 14, 12, 0, tzinfo=UTC)
API = "ecs://prod/api"
TICK = timedelta(seconds=30)


def service(
    uri: str = API,
    *,
    desired: int | None = 2,
    at: datetime = T0,
    metrics: Mapping[str, float] | None = None,
    version: str | None = None,
    health: Health = Health.HEALTHY,
    attributes: Mapping[str, Any] | None = None,
    provider_min: int | None = None,
    provider_max: int | None = None,
    detail: str = "",
) -> ResourceState:
    replicas = None
    if desired is not None:
        replicas = Replicas(desired, desired, 0, provider_min, provider_max)
    return ResourceState(
        ref=ResourceRef.parse(uri),
        health=health,
        observed_at=at,
        replicas=replicas,
        version=version,
        detail=detail,
        metrics=dict(metrics or {}),
        **facets(attributes or {}),
    )


def facets(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """Facet fields of `ResourceState` from the flat keys an actuator used to report.

    ``rollout``, ``rollout_reason`` and ``crash_looping`` make the `Rollout`;
    ``previous_version``, ``versions_available`` and ``stable_version`` the
    `Versions`; any other key stays an attribute.
    """
    rest = dict(attributes)
    out: dict[str, Any] = {}
    if "rollout" in rest:
        out["rollout"] = Rollout(
            RolloutState(rest.pop("rollout")),
            reason=rest.pop("rollout_reason", None),
            crash_looping=rest.pop("crash_looping", None),
        )
    keys = ("previous_version", "versions_available", "stable_version")
    if any(key in rest for key in keys):
        out["versions"] = Versions(
            previous=rest.pop("previous_version", None),
            available=tuple(rest.pop("versions_available", ())),
            stable=rest.pop("stable_version", None),
        )
    out["attributes"] = rest
    return out


def snap(at: datetime, *states: ResourceState) -> Snapshot:
    return Snapshot(taken_at=at, resources={str(s.ref): s for s in states})


def steady(
    start: datetime, ticks: int, make: Callable[[datetime], ResourceState]
) -> tuple[Snapshot, ...]:
    """``ticks`` snapshots, one every 30 s, ending one tick before ``start``."""
    times = [start - TICK * (ticks - i) for i in range(ticks)]
    return tuple(snap(t, make(t)) for t in times)


def changed(
    at: datetime,
    version: str,
    *,
    uri: str = API,
    health: Health = Health.HEALTHY,
    rollout: str | None = "completed",
    previous: str | None = None,
) -> Event:
    """A `resource.changed` event as the reconciler records it."""
    attributes = {} if rollout is None else {"rollout": rollout}
    return Event(
        kind=EventKind.RESOURCE_CHANGED,
        ts=at,
        idempotency_key=f"changed:{uri}:{version}:{at.isoformat()}:{health}:{rollout}",
        resource=uri,
        payload={
            "health": health.value,
            "version": version,
            "replicas": {"desired": 2, "running": 2},
            "detail": "",
            "attributes": attributes,
            "previous": None if previous is None else {"health": "healthy", "version": previous},
        },
    )


def rollback_event(
    kind: EventKind, at: datetime, version: str, *, uri: str = API, detail: str = ""
) -> Event:
    """An outcome event of a rollback action (applied, failed or escalated)."""
    return Event(
        kind=kind,
        ts=at,
        idempotency_key=f"{kind}:{uri}:{version}:{at.isoformat()}",
        resource=uri,
        action_kind=ActionKind.ROLLBACK.value,
        policy="rollback",
        payload={"params": {"version": version}, "outcome": "ok", "detail": detail},
    )


@dataclass(frozen=True, slots=True)
class Tick:
    at: datetime
    desired: int
    """Replicas when the tick observed the service."""
    proposed: int | None
    evaluation: Evaluation


def drive(
    policy: Policy,
    *,
    start: datetime,
    ticks: int,
    metrics: Callable[[int, int], Mapping[str, float]],
    replicas: int = 2,
    uri: str = API,
    keep: int = 20,
) -> list[Tick]:
    """Run ``ticks`` ticks 30 s apart; ``metrics(tick, serving)`` gives each observation.

    Every proposed SCALE is applied before the next tick, as the loop would, but
    new replicas take one tick to start serving: ``serving`` is the count
    before the latest change, so load per replica reacts a tick late.
    """
    history: list[Snapshot] = []
    out: list[Tick] = []
    serving = replicas
    for index in range(ticks):
        now = start + TICK * index
        observed = metrics(index, serving)
        serving = replicas
        current = snap(now, service(uri, desired=replicas, at=now, metrics=observed))
        evaluation = policy.evaluate(current, History(snapshots=tuple(history[-keep:])), now)
        scale = [a for a in evaluation.actions if a.kind == ActionKind.SCALE]
        proposed = typed.replicas(scale[0]) if scale else None
        out.append(Tick(now, replicas, proposed, evaluation))
        history.append(current)
        if proposed is not None:
            replicas = proposed
    return out
