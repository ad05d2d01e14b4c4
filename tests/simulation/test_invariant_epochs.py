"""The ``stale_epoch`` invariant catches an action under a replaced epoch, in either order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from jarvis.model import Event, EventKind
from jarvis.simulation import InvariantChecker, Rules

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
RULES = Rules(
    allow=(("sim", "*", frozenset({"restart"})),),
    max_actions_per_tick=5,
    max_replicas=20,
    max_attempts=3,
    retry_window=timedelta(hours=1),
)


def event(kind: EventKind, second: float, replica: str, epoch: int | None, n: int) -> Event:
    return Event(
        kind=kind,
        ts=T0 + timedelta(seconds=second),
        idempotency_key=f"{kind.value}:{n}",
        tick_id=f"t{n}",
        resource=f"sim://svc-{n}",
        action_kind="restart",
        action_id=f"a{n}",
        payload={"replica": replica, "epoch": epoch},
    )


def stale(events: list[Event]) -> list[str]:
    checker = InvariantChecker(RULES)
    checker.feed_events(events)
    return [v.message for v in checker.violations if v.invariant == "stale_epoch"]


def test_actions_of_successive_epochs_pass() -> None:
    events = [
        event(EventKind.ACTION_STARTED, 0, "a", 1, 1),
        event(EventKind.ACTION_APPLIED, 0, "a", 1, 1),
        event(EventKind.TICK_STARTED, 30, "b", 2, 2),
        event(EventKind.ACTION_STARTED, 30, "b", 2, 3),
        event(EventKind.ACTION_STARTED, 30, "c", None, 4),  # a single node names no epoch
    ]
    assert stale(events) == []


def test_an_action_after_a_newer_epoch_began_is_stale() -> None:
    events = [
        event(EventKind.TICK_STARTED, 30, "b", 2, 1),
        event(EventKind.ACTION_STARTED, 60, "a", 1, 2),
    ]
    assert stale(events) == [
        "action.started restart on sim://svc-2 under epoch 1 of a, after epoch 2 began"
    ]


def test_a_stale_action_recorded_before_the_newer_epoch_is_still_caught() -> None:
    """A spool replays late: the record's order is not time's."""
    events = [
        event(EventKind.ACTION_APPLIED, 60, "a", 1, 1),
        event(EventKind.TICK_STARTED, 30, "b", 2, 2),
    ]
    assert len(stale(events)) == 1


def test_one_epoch_belongs_to_one_replica() -> None:
    events = [
        event(EventKind.TICK_STARTED, 0, "a", 1, 1),
        event(EventKind.TICK_STARTED, 30, "b", 1, 2),
    ]
    assert stale(events) == ["epoch 1 written by both a and b"]
