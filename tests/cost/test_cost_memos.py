"""A cost policy evaluated tick after tick answers as a fresh one would on each tick.

The policy remembers the last snapshot's spend (the next tick's history) and
what it worked out per route; these tests pin that nothing remembered leaks
into an answer the inputs alone would not give.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from jarvis.model import History, ResourceState, Snapshot
from jarvis.policies.base import Evaluation
from tests import actions as typed
from tests.cost.builders import CHAT, CODE, cost_state, policy, route_state, route_usage, snapshot

JUNE_END = datetime(2025, 6, 30, 23, 59, 30, tzinfo=UTC)
JULY_START = datetime(2025, 7, 1, 0, 0, 0, tzinfo=UTC)


def _tick(
    spend: float, now: datetime, *routes: ResourceState, month: str | None = None
) -> Snapshot:
    usage = {"chat": route_usage(100_000), "code": route_usage(20_000, 2000, 600)}
    return snapshot(cost_state(spend, now=now, by_route=usage, month=month), *routes, now=now)


def _alerts(result: Evaluation) -> list[str | None]:
    return [note.key for note in result.notes]


def test_the_stage_remembered_from_last_month_does_not_count_in_a_new_one() -> None:
    """The last tick of June at the alert stage is no stage at all for the first tick of July."""
    reused = policy(CHAT)
    june = _tick(420.0, JUNE_END, route_state("chat", CHAT.weights, now=JUNE_END))
    july = _tick(420.0, JULY_START, route_state("chat", CHAT.weights, now=JULY_START))

    assert _alerts(reused.evaluate(june, History(), JUNE_END)) == ["budget:2025-06:alert"]
    result = reused.evaluate(july, History(snapshots=(june,)), JULY_START)

    assert _alerts(result) == ["budget:2025-07:alert"]


def test_a_history_other_than_the_last_snapshot_evaluated_is_read_afresh() -> None:
    """When the history's latest snapshot is not the one evaluated last, its own spend counts."""
    reused = policy(CHAT)
    route = route_state("chat", CHAT.weights)
    alert = _tick(420.0, JUNE_END, route)
    below = _tick(300.0, JUNE_END, route)
    again = _tick(425.0, JUNE_END, route)

    reused.evaluate(alert, History(), JUNE_END)
    result = reused.evaluate(again, History(snapshots=(below,)), JUNE_END)

    assert _alerts(result) == ["budget:2025-06:alert"]


def test_a_last_snapshot_without_known_spend_is_read_afresh() -> None:
    """A snapshot whose spend was stale for its own tick is read again for the next tick's month."""
    reused = policy(CHAT)
    route = route_state("chat", CHAT.weights, now=JUNE_END)
    early = _tick(420.0, JUNE_END, route, month="2025-07")
    july = _tick(425.0, JULY_START, route)

    assert reused.evaluate(early, History(), JUNE_END) == Evaluation()
    result = reused.evaluate(july, History(snapshots=(early,)), JULY_START)

    assert _alerts(result) == []


def test_a_reused_cost_policy_answers_like_a_fresh_one_through_every_stage() -> None:
    """Spend rising through every stage and into a new month, weights applied as proposed."""
    reused = policy(CHAT, CODE, max_shift=0.3)
    weights = {"chat": dict(CHAT.weights), "code": dict(CODE.weights)}
    spends = [300.0, 300.0, 410.0, 420.0, 455.0, 455.0, 455.0, 505.0, 505.0, 505.0, 505.0]
    start = JUNE_END - timedelta(seconds=30 * (len(spends) - 1))
    ticks = [(start + timedelta(seconds=30 * i), spend) for i, spend in enumerate(spends)]
    ticks += [(JULY_START, 10.0), (JULY_START + timedelta(seconds=30), 10.0)]
    history: tuple[Snapshot, ...] = ()
    answered = []
    for now, spend in ticks:
        snap = _tick(spend, now, *(route_state(n, w, now=now) for n, w in weights.items()))
        result = reused.evaluate(snap, History(snapshots=history), now)
        fresh = policy(CHAT, CODE, max_shift=0.3).evaluate(snap, History(snapshots=history), now)
        assert result == fresh
        for action in result.actions:
            weights[action.target.name] = dict(typed.weights(action))
        answered.append((len(result.actions), _alerts(result)))
        history = (*history, snap)[-2:]
    assert any(n for n, _ in answered[:-2]), "the stages moved some weights"
    assert {key for _, keys in answered for key in keys} == {
        "budget:2025-06:alert",
        "budget:2025-06:shift",
        "budget:2025-06:cheapest",
    }


def test_weights_changed_in_the_same_mapping_are_read_afresh() -> None:
    """Weights held in one mapping that changes between ticks are compared by value, not id."""
    reused = policy(CHAT)
    weights = dict(CHAT.weights)
    now = JUNE_END - timedelta(days=10)
    state = route_state("chat", weights, now=now)
    held = state.weights
    assert held is not None
    mapping = held.weights
    assert isinstance(mapping, dict)

    def tick() -> Evaluation:
        snap = _tick(100.0, now, state)
        answer = reused.evaluate(snap, History(), now)
        assert answer == policy(CHAT).evaluate(snap, History(), now)
        return answer

    assert tick().actions == ()
    mapping.update({"gpt-4o": 0.2, "gemini": 0.2, "claude": 0.6})
    assert len(tick().actions) == 1, "the moved weights are stepped back"
    mapping.update(CHAT.weights)
    assert tick().actions == ()


def test_a_new_target_over_the_same_weights_is_measured_afresh() -> None:
    """The same weights against the alert stage's target, then the shift stage's, then back."""
    reused = policy(CHAT)
    answers = []
    for spend in (100.0, 460.0, 100.0, 460.0):
        now = JUNE_END - timedelta(days=10)
        snap = _tick(spend, now, route_state("chat", CHAT.weights, now=now))
        answer = reused.evaluate(snap, History(), now)
        assert answer == policy(CHAT).evaluate(snap, History(), now)
        answers.append(len(answer.actions))
    assert answers == [0, 1, 0, 1]
