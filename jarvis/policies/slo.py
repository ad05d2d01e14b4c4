"""Latency SLOs over endpoint probes: the pure judgement, and what endpoints tell heal and rollback.

`judge` decides whether an objective holds over the samples of its window;
`alert_change` turns two verdicts into at most one alert (fire when broken,
resolve when met again). The loop's `jarvis.loop.endpoints.EndpointWatch` keeps
the samples and the open alerts, and calls these each tick; nothing here does
I/O or reads a clock.

`with_endpoint_health` is how an endpoint feeds the heal and rollback policies:
while ``endpoint://NAME`` is unhealthy, the service it serves reads as
unhealthy too, so heal restarts it, rollback counts it against a new version
and the retry budget sees restarts that did not fix it. The loop folds it into
each tick's snapshot once (`EndpointWatch.fold`). The endpoint itself is never
a target.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from jarvis.model import Health, ResourceState, Snapshot

__all__ = ["Judgement", "Objective", "alert_change", "judge", "p95", "with_endpoint_health"]


@dataclass(frozen=True, slots=True)
class Objective:
    """p95 of the pooled probe latencies of ``endpoints`` under ``p95_ms`` over ``window``."""

    name: str
    endpoints: frozenset[str]
    """Endpoint URIs (``endpoint://NAME``) whose samples are pooled."""
    p95_ms: float
    window: timedelta
    min_samples: int = 5
    severity: str = "warning"


@dataclass(frozen=True, slots=True)
class Judgement:
    """``ok`` is None when the window holds too few samples to say."""

    ok: bool | None
    p95_ms: float | None
    samples: int


def p95(values: Iterable[float]) -> float:
    """The 95th percentile by nearest rank: a latency some sample actually had."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no samples")
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def judge(
    objective: Objective, samples: Iterable[tuple[datetime, float]], now: datetime
) -> Judgement:
    """The verdict over the samples (time, latency in ms) inside the window ending ``now``."""
    since = now - objective.window
    latencies = [ms for at, ms in samples if since < at <= now]
    if len(latencies) < objective.min_samples:
        return Judgement(None, p95(latencies) if latencies else None, len(latencies))
    value = p95(latencies)
    return Judgement(value <= objective.p95_ms, value, len(latencies))


def alert_change(open_alert: bool, judgement: Judgement) -> bool | None:
    """True: fire an alert; False: resolve the open one; None: nothing to say.

    One alert per breach: a broken SLO with an alert open stays quiet, and a
    window with too few samples neither fires nor resolves.
    """
    if judgement.ok is None:
        return None
    if not judgement.ok and not open_alert:
        return True
    if judgement.ok and open_alert:
        return False
    return None


def with_endpoint_health(snapshot: Snapshot, serves: Mapping[str, str]) -> Snapshot:
    """``snapshot`` with each served resource unhealthy while an endpoint serving it is.

    ``serves`` maps an endpoint URI to the resource URI behind it. A resource
    already unhealthy, UNKNOWN (its provider could not read it: nothing to act
    on, and an action would fail on the same read) or absent from the snapshot
    is left as it is; so is the snapshot when no endpoint is down (the common
    case costs a lookup each).
    """
    changed: dict[str, ResourceState] = {}
    resources = snapshot.resources
    for endpoint_uri in sorted(serves):
        endpoint = resources.get(endpoint_uri)
        target_uri = serves[endpoint_uri]
        served = changed.get(target_uri) or resources.get(target_uri)
        if endpoint is None or endpoint.health is not Health.UNHEALTHY or served is None:
            continue
        if served.health is Health.UNHEALTHY or served.health is Health.UNKNOWN:
            continue
        changed[target_uri] = replace(
            served,
            health=Health.UNHEALTHY,
            detail=f"{endpoint_uri} failing: {endpoint.detail or 'unhealthy'}",
        )
    if not changed:
        return snapshot
    return replace(snapshot, resources={**resources, **changed})
