"""Scaling and rollback propose in URI order whatever order the snapshot holds resources in."""

from __future__ import annotations

from jarvis.model import History, Snapshot
from jarvis.policies.rollback import RollbackPolicy
from jarvis.policies.scaling import ScalingPolicy
from tests.policies.fleet import T0, service

URIS = [f"ecs://prod/svc-{name}" for name in ("c", "a", "d", "b")]
RULES = {"rules": [{"match": "ecs://*", "target_requests_per_minute": 100}]}


def test_scaling_actions_and_notes_come_out_sorted_by_uri() -> None:
    """Busy services scale and metric-less ones get notes, each list in URI order."""
    states = [
        service(uri, desired=2, metrics={"requests_per_minute": 900} if i % 2 else {})
        for i, uri in enumerate(URIS + [u + "-quiet" for u in URIS])
    ]
    states += [service(u + "-calm", desired=2, metrics={"requests_per_minute": 200}) for u in URIS]
    snapshot = Snapshot(taken_at=T0, resources={str(s.ref): s for s in reversed(states)})
    evaluation = ScalingPolicy.from_config(RULES).evaluate(snapshot, History(), T0)
    scaled = [str(action.target) for action in evaluation.actions]
    noted = [str(note.resource) for note in evaluation.notes]
    assert len(scaled) == len(noted) == 4
    assert scaled == sorted(scaled)
    assert noted == sorted(noted)


def test_rollbacks_come_out_sorted_by_uri() -> None:
    """Failed rollouts are rolled back in URI order, quiet services among them or not."""
    failed = [
        service(uri, version="v2", attributes={"rollout": "failed", "previous_version": "v1"})
        for uri in URIS
    ]
    quiet = [service(uri + "-ok", version="v1") for uri in URIS]
    states = [state for pair in zip(failed, quiet, strict=True) for state in pair]
    snapshot = Snapshot(taken_at=T0, resources={str(s.ref): s for s in states})
    evaluation = RollbackPolicy().evaluate(snapshot, History(), T0)
    rolled = [str(action.target) for action in evaluation.actions]
    assert rolled == sorted(URIS)
