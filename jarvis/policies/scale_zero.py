"""Scale to zero and back, as KEDA does, for services whose rule opts in (``min_replicas = 0``).

Used by the scaling policy (`jarvis.policies.scaling`). The HPA cannot leave or
reach zero (its arithmetic multiplies the current count), so, like KEDA, these
two steps sit beside it: a service whose requests stayed at or below the
activation threshold for the whole cooldown scales to zero, and a service at
zero that sees requests again scales to one (or the floor its schedule sets),
after which the HPA takes over. Both reasons carry a cold-start note: the first
requests after zero wait for a replica to start. Pure: history and time are
passed in.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from jarvis.model import Metric, ResourceState, Snapshot
from jarvis.policies.base import usable_reading
from jarvis.policies.scaling_rules import ScalingRule

__all__ = [
    "COLD_START",
    "RPM",
    "activity",
    "floor_reason",
    "idle_through_cooldown",
    "wake_reason",
    "zero_reason",
]

RPM = Metric.REQUESTS_PER_MINUTE
COLD_START = "cold start: the first requests wait while a replica starts"


def activity(state: ResourceState, rule: ScalingRule) -> bool | None:
    """Whether the service has requests above the activation threshold; None: unknown."""
    value = state.metrics.get(RPM)
    if not usable_reading(value):
        return None
    return value > rule.activation_requests_per_minute


def idle_through_cooldown(
    uri: str, state: ResourceState, rule: ScalingRule, snapshots: Iterable[Snapshot], now: datetime
) -> bool:
    """Idle now and in every snapshot of the cooldown, and seen at or before its start.

    Unknown activity (a missing metric, the service not seen) is not idle: a
    service is scaled to zero only on evidence, never for lack of it.
    """
    if activity(state, rule) is not False:
        return False
    cutoff = now - timedelta(seconds=rule.cooldown_seconds)
    covered = False
    for snapshot in snapshots:
        if snapshot.taken_at > now:
            continue
        past = snapshot.resources.get(uri)
        if snapshot.taken_at <= cutoff:
            covered = covered or past is not None
        elif past is None or activity(past, rule) is not False:
            return False
    return covered


def zero_reason(state: ResourceState, rule: ScalingRule) -> str:
    """Why an idle service goes to zero; the action's reason puts the move before it."""
    rpm = state.metrics.get(RPM, 0.0)
    return (
        f"{RPM} {rpm:g}/min at or below the activation threshold "
        f"{rule.activation_requests_per_minute:g} for the whole {rule.cooldown_seconds:g} s "
        f"cooldown: scale to zero (min_replicas = 0); {COLD_START} after this"
    )


def wake_reason(state: ResourceState, rule: ScalingRule) -> str:
    """Why requests wake a service at zero; the action's reason puts the move before it."""
    rpm = state.metrics.get(RPM, 0.0)
    return (
        f"{RPM} {rpm:g}/min above the activation threshold "
        f"{rule.activation_requests_per_minute:g} wakes it from zero; {COLD_START}"
    )


def floor_reason(target: int) -> str:
    """Why a floor wakes a service at zero; the action's reason puts the move before it."""
    return (
        f"the bounds' minimum {target} (min_replicas of the rule or its "
        f"schedule window) wakes it from zero whatever its requests; {COLD_START}"
    )
