"""The heal policy: propose a restart for every service that is down.

Called by the reconciler once per tick, like every policy. It is pure: no I/O,
no logging, no clock; the same snapshot always gives the same proposals.

What it does not do, on purpose: it does not skip quarantined resources or
resources waiting out a retry backoff, although ``history.retries`` would tell
it. The guard owns the retry budget; it blocks those proposals and records
*why* (``action.blocked`` with reason ``quarantine`` / ``retry_budget``), so an
operator reading the event log sees that Jarvis still notices the broken
service and is holding back, instead of seeing nothing at all.

With ``restart_degraded``, a DEGRADED resource whose rollout is still in
progress (its ``rollout`` facet says so: a Deployment whose new pods are
starting, a Cloud Run service's first revision deploying) is left alone: a
restart would start that rollout over, tick after tick. The provider says when
it took too long (a Deployment's progress deadline): the rollout is failed, the
resource UNHEALTHY, and it is restarted.

A resource whose desired count was raised within ``start_grace`` (woken from
zero by the scaling policy, scaled up by it, an operator or anyone else) is
starting, not broken, while its missing replicas have not failed: on ECS a
woken service reads "0 of 1 tasks running" (UNHEALTHY) until its task is up,
which takes a minute on Fargate, and a restart then would replace the task
being started, tick after tick, until the retry budget escalated a normal
wake-up to on-call. It is left alone, with a note saying until when; if its
replicas are still missing once the grace has passed, it is restarted. The raise
is read from the snapshots of recent ticks (`History.snapshots`), so no event
history is needed. A resource that was already UNHEALTHY before the raise, or
whose provider says the new replicas fail (rollout failed, crash-looping), is
restarted at once, as before.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from jarvis.model import (
    Action,
    Health,
    History,
    ResourceState,
    Restart,
    RolloutState,
    Snapshot,
)
from jarvis.policies.base import Evaluation, Note

RESTARTABLE_KINDS = frozenset({"service", "deployment"})
"""Resource kinds a restart means something for; probes, routes and cost never qualify."""

RESTART_PRIORITY = 20
"""Above scaling (0), below a rollback: a crashed service is restarted rather
than resized, but if its new version is what crashes, rolling back wins."""
DEGRADED_RESTART_PRIORITY = 10

START_GRACE = timedelta(minutes=3)
"""How long missing replicas count as starting after the desired count was raised."""

_UNHEALTHY = Health.UNHEALTHY
_DEGRADED = Health.DEGRADED


class HealPolicy:
    """Restarts UNHEALTHY services and deployments (and DEGRADED ones when asked)."""

    name = "heal"

    def __init__(
        self, *, restart_degraded: bool = False, start_grace: timedelta = START_GRACE
    ) -> None:
        self._restart_degraded = restart_degraded
        self._start_grace = start_grace
        # The healths `_priority` gives a priority for.
        self._restarted = frozenset({_UNHEALTHY, _DEGRADED} if restart_degraded else {_UNHEALTHY})

    def evaluate(self, snapshot: Snapshot, history: History, now: datetime) -> Evaluation:
        """One RESTART per broken restartable resource, sorted by resource URI."""
        proposals: dict[str, Action] = {}
        notes: list[Note] = []
        resources = snapshot.resources
        # Health first, in one pass: most resources are healthy, so each costs a
        # set lookup, and only the broken ones are sorted and looked at again.
        restarted = self._restarted
        broken = [key for key, state in resources.items() if state.health in restarted]
        # Sorted keys make the result independent of insertion order, even for a
        # (malformed) snapshot holding one resource under two keys.
        for key in sorted(broken):
            state = resources[key]
            priority = self._priority(state)
            if priority is None or state.ref.kind not in RESTARTABLE_KINDS:
                continue
            uri = str(state.ref)
            if uri in proposals:
                continue
            raised = self._raised(uri, state, history, now)
            if raised is not None:
                notes.append(raised)
                continue
            proposals[uri] = Action(
                target=state.ref,
                params=Restart(),
                policy=self.name,
                reason=_reason(state),
                priority=priority,
            )
        return Evaluation(
            actions=tuple(proposals[uri] for uri in sorted(proposals)), notes=tuple(notes)
        )

    def _raised(
        self, uri: str, state: ResourceState, history: History, now: datetime
    ) -> Note | None:
        """A note if ``state``'s missing replicas are starting after a recent raise, else None.

        The newest snapshot inside the grace that held a lower desired count is
        the last one before the raise; the resource must not have been
        UNHEALTHY in it (a raise does not make a broken resource start).
        """
        replicas, rollout = state.replicas, state.rollout
        if self._start_grace <= timedelta(0) or replicas is None:
            return None
        if replicas.running >= replicas.desired:
            return None
        if rollout is not None and (
            rollout.state is RolloutState.FAILED or rollout.crash_looping is True
        ):
            return None
        since = now - self._start_grace
        before: ResourceState | None = None
        for past in reversed(history.snapshots):
            if past.taken_at < since:
                break
            earlier = past.resources.get(uri)
            if earlier and earlier.replicas and earlier.replicas.desired < replicas.desired:
                before = earlier
                break
        if before is None or before.health is _UNHEALTHY or before.replicas is None:
            return None
        until = before.observed_at + self._start_grace
        message = (
            f"{uri}: desired replicas raised from {before.replicas.desired} to"
            f" {replicas.desired} since {before.observed_at:%H:%M:%S}; {replicas.running}"
            f" running, left to start until {until:%H:%M:%S} before a restart"
        )
        return Note(message=message, resource=uri, key=f"{self.name}:starting:{uri}")

    def _priority(self, state: ResourceState) -> int | None:
        health = state.health
        if health is _UNHEALTHY:
            return RESTART_PRIORITY
        if health is _DEGRADED and self._restart_degraded and not _rolling_out(state):
            return DEGRADED_RESTART_PRIORITY
        return None


def _rolling_out(state: ResourceState) -> bool:
    """Whether the resource's new version is still rolling out, as its provider judges it."""
    return state.rollout is not None and state.rollout.state is RolloutState.IN_PROGRESS


def _reason(state: ResourceState) -> str:
    """What was seen, in the operator's words: health, the provider's detail, replicas."""
    parts = [f"{state.health.value}: {state.detail or 'no detail reported'}"]
    replicas = state.replicas
    if replicas is not None:
        parts.append(f"{replicas.running} of {replicas.desired} replicas running")
    return "; ".join(parts)
